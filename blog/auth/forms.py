from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, Email, EqualTo, Length

from blog.forms import strip
from blog.models import EMAIL_MAX

PASSWORD_MIN = 8
PASSWORD_MAX = 200


class SignupForm(FlaskForm):
    email = EmailField(
        "Email",
        filters=[strip],
        validators=[DataRequired(), Length(max=EMAIL_MAX), Email(check_deliverability=False)],
    )
    password = PasswordField(
        "Password", validators=[DataRequired(), Length(min=PASSWORD_MIN, max=PASSWORD_MAX)]
    )
    confirm = PasswordField(
        "Confirm password",
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
    )


class LoginForm(FlaskForm):
    email = EmailField("Email", filters=[strip], validators=[DataRequired(), Length(max=EMAIL_MAX)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=PASSWORD_MAX)])
    remember = BooleanField("Remember me")
    next = HiddenField()
