"""Sign up, log in, log out."""

import functools
from urllib.parse import unquote, urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_limiter import RateLimitExceeded
from flask_login import current_user, login_required, login_user, logout_user
from markupsafe import Markup
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from blog.auth import throttle
from blog.auth.forms import LoginForm, SignupForm
from blog.errors import try_again_message
from blog.extensions import db, limiter, login_manager
from blog.mail import welcome_email
from blog.models import User
from workers.mailers import schedule_email, schedule_signup_reminder

bp = Blueprint("auth", __name__)


@functools.cache
def dummy_hash(method: str) -> str:
    """Checked when no user has the email, so that a wrong email costs as long as a wrong
    password: made with the method the users' hashes are made with."""
    return generate_password_hash("not a real password", method=method)


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


def safe_next(target: str | None) -> str:
    """``target`` if it is a path on this site, else ``/``.

    Browsers read ``//evil.com`` and ``/\\evil.com`` as other hosts, ignore tabs and new lines
    inside URLs, and some servers decode twice, so the check runs on the decoded form too.
    """
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    decoded = target
    for _ in range(3):
        decoded = unquote(decoded)
    unsafe = (
        "\\" in decoded
        or any(ord(ch) < 32 or ord(ch) == 127 for ch in decoded)
        or not decoded.startswith("/")
        or decoded.startswith("//")
        or urlsplit(decoded).scheme
        or urlsplit(decoded).netloc
    )
    return "/" if unsafe else target


def signup_rate_limit() -> str:
    return current_app.config["SIGNUP_RATE_LIMIT"]


@bp.route("/signup", methods=["GET", "POST"])
# Only signups that went through count (a form sent back with errors does not): each one
# sends an email.
@limiter.limit(
    signup_rate_limit, methods=["POST"], deduct_when=lambda response: response.status_code == 302
)
def signup():
    if current_user.is_authenticated:
        return redirect(url_for("posts.index"))
    form = SignupForm()
    if form.validate_on_submit():
        email = User.normalise_email(form.email.data)
        create_account(email, form.password.data)
        # The same answer whether or not the address had an account already, so that this
        # form cannot tell anyone who has one. Hence no logging in here either.
        message = Markup(
            "Thank you! If {} had no account yet, it has one now, and a welcome email is on "
            "its way. Log in to start writing."
        ).format(email)  # format() escapes the address
        if current_app.config["DEV_MAILBOX"]:
            message += Markup(' See it arrive in the <a href="{}">dev mailbox</a>.').format(
                url_for("mailbox.index")
            )
        flash(message, "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/signup.html", form=form)


def create_account(email: str, password: str) -> None:
    """Create the account, write its welcome email and schedule a reminder; do nothing if
    the email is taken (its owner got a welcome email already, and gets no second one).

    The password is hashed either way, so that a taken address takes as long to answer as a
    new one.
    """
    user = User(email=email)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError:  # the unique email: caught here, so two signups cannot race
        db.session.rollback()
        return
    welcome = welcome_email(user)
    db.session.add(welcome)
    schedule_email(welcome)
    schedule_signup_reminder(user)
    db.session.commit()


@bp.route("/login", methods=["GET", "POST"])
@throttle.per_address
@throttle.per_account
def login():
    if current_user.is_authenticated:
        return redirect(url_for("posts.index"))
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        user = User.by_email(form.email.data)
        if user and user.check_password(form.password.data):
            login_user(user, remember=form.remember.data)
            flash("You are logged in.", "success")
            return throttle.remember_browser(redirect(safe_next(form.next.data)), user.email)
        if user is None:
            check_password_hash(
                dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), form.password.data
            )
        form.password.errors.append("Wrong email or password.")
    return render_template("auth/login.html", form=form)


@bp.errorhandler(RateLimitExceeded)
def too_many_attempts(error: RateLimitExceeded):
    """A signup or login refused by a limit: its form again, as the user filled it in (the
    password fields excepted), and when to try again."""
    message = try_again_message()
    if request.endpoint == "auth.signup":
        template, form = "auth/signup.html", SignupForm()
        if current_app.config["APP_ENV"] == "development":
            message += (
                f" (Signups per address are limited by SIGNUP_RATE_LIMIT, now "
                f"{current_app.config['SIGNUP_RATE_LIMIT']}: raise it in .env to lift it.)"
            )
    else:
        template, form = "auth/login.html", LoginForm()
    flash(message, "error")
    return render_template(template, form=form), 429


@bp.post("/logout")
@login_required
def logout():
    logout_user()
    flash("You are logged out.", "info")
    return redirect(url_for("posts.index"))
