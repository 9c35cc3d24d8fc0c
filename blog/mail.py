"""Email: write a message into the outbox, and deliver an outbox row by SMTP.

Every message starts as a row of the ``Email`` outbox, added in the same transaction as what
it is about, and the ``send_email`` job (workers/mailers.py) delivers it later. Without
``MAIL_URL`` the outbox is where mail ends: read it at /dev/mail.
"""

import logging
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import urlsplit

from flask import current_app, render_template

from blog.config import DROP_MAIL, mail_server
from blog.models import Email, User

log = logging.getLogger(__name__)

WELCOME = "welcome"
SIGNUP_REMINDER = "signup_reminder"

# Seconds to wait for each answer of the SMTP server; the job's timeout bounds the whole.
SMTP_TIMEOUT = 20


def site_url(endpoint: str, **values) -> str:
    """An absolute link for an email, on ``APP_URL``: never on the request's Host header,
    and with no request at all in a job, where ``url_for`` has nothing to go by."""
    base = urlsplit(current_app.config["APP_URL"])
    urls = current_app.url_map.bind(
        base.netloc, script_name=base.path or "/", url_scheme=base.scheme
    )
    return urls.build(endpoint, values, force_external=True)


def message_id(kind: str, user_id: int) -> str:
    """The Message-ID of the one ``kind`` email a user ever gets: ``<welcome.42@blog.example>``.

    The same for every attempt to send it, by any worker, so a receiving server that has the
    message already can drop a second copy.
    """
    return f"<{kind}.{user_id}@{urlsplit(current_app.config['APP_URL']).hostname}>"


def compose(user: User, kind: str, subject: str, template: str, **context) -> Email:
    """An unsent outbox row for ``user`` (who has an id), from
    ``templates/email/<template>.txt`` and ``.html``."""
    context = {"user": user, **context}
    return Email(
        user=user,
        kind=kind,
        to_address=user.email,
        subject=subject,
        text_body=render_template(f"email/{template}.txt", **context),
        html_body=render_template(f"email/{template}.html", **context),
        message_id=message_id(kind, user.id),
    )


def welcome_email(user: User) -> Email:
    """The welcome message for a user who has just signed up."""
    return compose(
        user,
        WELCOME,
        "Welcome to Flask Background Jobs",
        "welcome",
        write_url=site_url("posts.new"),
    )


def signup_reminder_email(user: User) -> Email:
    """The nudge for a user who signed up a while ago and has not written anything yet."""
    return compose(
        user,
        SIGNUP_REMINDER,
        "Your first post is waiting",
        "signup_reminder",
        write_url=site_url("posts.new"),
    )


def build_message(email: Email) -> EmailMessage:
    """The message of an outbox row, with the same headers (Message-ID, Date) every time."""
    message = EmailMessage()
    message["From"] = current_app.config["MAIL_FROM"]
    message["To"] = email.to_address
    message["Subject"] = email.subject
    message["Date"] = format_datetime(email.created_at)
    message["Message-ID"] = email.message_id
    message.set_content(email.text_body)
    message.add_alternative(email.html_body, subtype="html")
    return message


def reroute(message: EmailMessage) -> EmailMessage | None:
    """``message`` as ``MAIL_REROUTE`` wants it: unchanged when unset, None for ``drop``, else
    addressed to the reroute address, its subject saying whom it was for. Logged either way."""
    target = current_app.config["MAIL_REROUTE"]
    if not target:
        return message
    recipient = message["To"]
    if target == DROP_MAIL:
        log.warning("MAIL_REROUTE=drop: %s to %s not sent", message["Message-ID"], recipient)
        return None
    log.warning("MAIL_REROUTE: %s to %s goes to %s", message["Message-ID"], recipient, target)
    message.replace_header("To", target)
    message["X-Original-To"] = recipient
    message.replace_header("Subject", f"[for {recipient}] {message['Subject']}")
    return message


def deliver(message: EmailMessage) -> None:
    """Hand ``message`` to the SMTP server of ``MAIL_URL``, rerouted if ``MAIL_REROUTE`` says
    so; without a server, do nothing (the outbox row is the delivered mail). SMTP errors
    propagate."""
    message = reroute(message)
    if message is None:
        return
    url = current_app.config["MAIL_URL"]
    if not url:
        if current_app.config["APP_ENV"] == "production":
            log.warning("MAIL_URL is not set: %s stays in the outbox", message["Message-ID"])
        else:
            deliver_to_dev_mailbox(current_app.config["MAIL_LATENCY"])
        return
    server = mail_server(url)
    tls = ssl.create_default_context()
    if server.tls == "implicit":
        smtp = smtplib.SMTP_SSL(server.host, server.port, timeout=SMTP_TIMEOUT, context=tls)
    else:
        smtp = smtplib.SMTP(server.host, server.port, timeout=SMTP_TIMEOUT)
    with smtp:  # says QUIT at the end, and ignores a server that hung up already
        if server.tls == "starttls":
            smtp.starttls(context=tls)  # raises if the server cannot: no mail in clear
        if server.username:
            smtp.login(server.username, server.password)
        smtp.send_message(message)


def deliver_to_dev_mailbox(latency: float) -> None:
    """The development mailbox's delivery: the outbox row is the mail, so there is nothing to
    send; ``MAIL_LATENCY`` makes it take as long as a slow mail server would."""
    end = time.monotonic() + latency
    # In short steps: a job in a thread can be stopped (timeout, shutdown) only between them.
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.1))
