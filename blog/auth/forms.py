from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from blog.auth.policy import PASSWORD_MAX, PASSWORD_MIN, PolicyError, check_password, checked_email
from blog.forms import strip
from blog.models import EMAIL_MAX


def follows_policy(check):
    """A WTForms validator from one of ``blog.auth.policy``'s checks."""

    def validator(form, field):
        try:
            check(field.data or "")
        except PolicyError as error:
            raise ValidationError(str(error)) from None

    return validator


class SignupForm(FlaskForm):
    email = EmailField(
        "Email",
        filters=[strip],
        validators=[DataRequired(), follows_policy(checked_email)],
        render_kw={"autocomplete": "username"},  # what password managers save it under
    )
    password = PasswordField(
        "Password",
        validators=[DataRequired(), follows_policy(check_password)],
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
