"""Email: the outbox row a signup writes, the message built from it, and its delivery."""

import smtplib

import pytest
from sqlalchemy import select

from blog.extensions import db
from blog.mail import build_message, deliver
from blog.models import Email


@pytest.fixture
def welcome(client, auth, app) -> int:
    """The id of the welcome email of a user who just signed up."""
    auth.signup("new@example.com")
    with app.app_context():
        return db.session.scalars(select(Email)).one().id


def test_the_welcome_email_links_to_the_site_by_its_configured_address(client, auth, app):
    app.config["APP_URL"] = "https://blog.example.com"
    # Whoever sends the request chooses its Host: it must not end up in the email.
    client.environ_base["HTTP_HOST"] = "evil.example.net"
    auth.signup("new@example.com")
    with app.app_context():
        email = db.session.scalars(select(Email)).one()
        assert email.subject == "Welcome to Flask Background Jobs"
        assert email.to_address == "new@example.com"
        for body in (email.text_body, email.html_body):
            assert "https://blog.example.com/posts/new" in body
            assert "evil" not in body


def test_the_message_has_the_same_headers_every_time_it_is_built(app, auth):
    app.config["MAIL_FROM"] = "Blog <noreply@blog.example.com>"
    app.config["APP_URL"] = "https://blog.example.com"
    auth.signup("new@example.com")
    with app.app_context():
        email = db.session.scalars(select(Email)).one()
        first, again = build_message(email), build_message(email)
    # Deterministic: kind, user and the app's host, so a receiving server can drop a copy.
    assert email.message_id == f"<welcome.{email.user_id}@blog.example.com>"
    for header in ("From", "To", "Subject", "Date", "Message-ID"):
        assert first[header] == again[header]
    assert first["Message-ID"] == email.message_id
    assert first["To"] == "new@example.com"
    assert first["From"] == "Blog <noreply@blog.example.com>"
    text, html = (part.get_content() for part in first.iter_parts())
    assert text.rstrip() == email.text_body and html.rstrip() == email.html_body


def test_without_mail_url_delivery_leaves_the_mail_in_the_outbox(app, welcome, caplog):
    with app.app_context():
        deliver(build_message(db.session.get(Email, welcome)))  # no server, no error
    assert caplog.text == ""


def test_mail_latency_makes_the_dev_mailbox_as_slow_as_a_mail_server(app, welcome, monkeypatch):
    slept = []
    monkeypatch.setattr("blog.mail.time.sleep", slept.append)
    app.config["MAIL_LATENCY"] = 0.25
    with app.app_context():
        deliver(build_message(db.session.get(Email, welcome)))
    # In steps, so that a job's timeout or a shutdown can stop it in between.
    assert len(slept) >= 3 and max(slept) <= 0.1


def test_delivery_hands_the_message_to_the_smtp_server(app, welcome, mail_catcher):
    with app.app_context():
        deliver(build_message(db.session.get(Email, welcome)))
        message_id = db.session.get(Email, welcome).message_id
    (received,) = mail_catcher.messages
    assert received["Message-ID"] == message_id
    assert received["To"] == "new@example.com"


def test_smtp_without_starttls_is_refused_unless_the_url_says_tls_off(app, welcome, mail_catcher):
    app.config["MAIL_URL"] = mail_catcher.url.removesuffix("?tls=off")
    with app.app_context(), pytest.raises(smtplib.SMTPNotSupportedError):
        deliver(build_message(db.session.get(Email, welcome)))
    assert mail_catcher.messages == []


def test_an_smtp_refusal_is_an_error(app, welcome, mail_catcher):
    mail_catcher.refusals = 1
    with app.app_context(), pytest.raises(smtplib.SMTPDataError):
        deliver(build_message(db.session.get(Email, welcome)))
