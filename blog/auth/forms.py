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
        validators=[
            DataRequired(),
            Length(max=EMAIL_MAX),
            # An address with non-ASCII letters before the @ needs an SMTP server that speaks
            # SMTPUTF8, which many do not: refuse it here rather than fail to send later.
            Email(check_deliverability=False, allow_smtputf8=False),
        ],
        render_kw={"autocomplete": "username"},  # what password managers save it under
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(min=PASSWORD_MIN, max=PASSWORD_MAX)],
        description=f"At least {PASSWORD_MIN} characters.",
        render_kw={"autocomplete": "new-password"},
    )
    confirm = PasswordField(
        "Confirm password",
        validators=[DataRequired(), EqualTo("password", message="The passwords do not match.")],
        render_kw={"autocomplete": "new-password"},
    )


class LoginForm(FlaskForm):
    email = EmailField(
        "Email",
        filters=[strip],
        validators=[DataRequired(), Length(max=EMAIL_MAX)],
        render_kw={"autocomplete": "username"},
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), Length(max=PASSWORD_MAX)],
        render_kw={"autocomplete": "current-password"},
    )
    remember = BooleanField("Remember me")
    next = HiddenField()
