"""What an account needs: the rules the signup form and ``flask users create`` share."""

from email_validator import EmailNotValidError, validate_email

from blog.models import EMAIL_MAX, User

PASSWORD_MIN = 8
PASSWORD_MAX = 200


class PolicyError(ValueError):
    """An email address or a password the app does not accept; the message is for the user."""


def checked_email(address: str) -> str:
    """The address as it is stored (trimmed, lower-cased), or a PolicyError.

    An address with non-ASCII letters before the @ needs an SMTP server that speaks SMTPUTF8,
    which many do not: it is refused here rather than fail to send later.
    """
    email = User.normalise_email(address)
    if len(email) > EMAIL_MAX:
        raise PolicyError(f"An email address has at most {EMAIL_MAX} characters.")
    try:
        validate_email(email, check_deliverability=False, allow_smtputf8=False)
    except EmailNotValidError as error:
        raise PolicyError(f"Invalid email address: {error}") from None
    return email


def check_password(password: str) -> None:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise PolicyError(f"A password has {PASSWORD_MIN} to {PASSWORD_MAX} characters.")
