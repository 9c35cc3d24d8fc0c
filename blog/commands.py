"""The ``flask`` command line: ``flask users ...``."""

import click
from email_validator import EmailNotValidError, validate_email
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError

from blog.auth.forms import PASSWORD_MIN
from blog.extensions import db
from blog.models import User

users = AppGroup("users", help="Manage user accounts.")


@users.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Let this user reach the admin pages.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Asked for when not given.",
)
def create_user(email: str, admin: bool, password: str) -> None:
    """Create a user with EMAIL, optionally an admin."""
    email = User.normalise_email(email)
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        raise click.BadParameter(str(error), param_hint="EMAIL") from None
    if len(password) < PASSWORD_MIN:
        raise click.BadParameter(
            f"must be at least {PASSWORD_MIN} characters.", param_hint="--password"
        )
    user = User(email=email, is_admin=admin)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise click.ClickException(f"A user with the email {email} already exists.") from None
    click.echo(f"Created {'admin' if admin else 'user'} {email} (id {user.id}).")


def init_app(app: Flask) -> None:
    app.cli.add_command(users)
