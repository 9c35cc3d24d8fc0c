"""Staging: ``MAIL_REROUTE`` sends every email to one address instead, or none at all, and
the log and the mailbox say so."""

import logging

import pytest
from sqlalchemy import select

from blog.config import ConfigError, from_environment
from blog.extensions import db
from blog.mail import build_message, deliver
from blog.models import Email


@pytest.fixture
def welcome(client, auth, app) -> int:
    auth.signup("real.user@example.com")
    with app.app_context():
        return db.session.scalars(select(Email)).one().id


def send(app, email_id: int) -> None:
    with app.app_context():
        deliver(build_message(db.session.get(Email, email_id)))


def test_rerouted_mail_goes_to_the_one_address_and_says_whom_it_was_for(
    app, welcome, mail_catcher, caplog
):
    app.config["MAIL_REROUTE"] = "staging@example.com"
    with caplog.at_level(logging.WARNING, logger="blog.mail"):
        send(app, welcome)
    (received,) = mail_catcher.messages
    assert received["To"] == "staging@example.com"
    assert received["X-Original-To"] == "real.user@example.com"
    assert received["Subject"] == "[for real.user@example.com] Welcome to Flask Background Jobs"
    assert "to real.user@example.com goes to staging@example.com" in caplog.text


def test_drop_sends_nothing_and_logs_it(app, welcome, mail_catcher, caplog):
    app.config["MAIL_REROUTE"] = "drop"
    with caplog.at_level(logging.WARNING, logger="blog.mail"):
        send(app, welcome)
    assert mail_catcher.messages == []
    assert "MAIL_REROUTE=drop:" in caplog.text and "real.user@example.com not sent" in caplog.text


def test_unset_delivers_to_the_recipient(app, welcome, mail_catcher):
    send(app, welcome)
    (received,) = mail_catcher.messages
    assert received["To"] == "real.user@example.com" and "X-Original-To" not in received


def test_the_mailbox_says_where_mail_goes(app, client, welcome):
    app.config["MAIL_REROUTE"] = "staging@example.com"
    assert "every email is sent to\n      staging@example.com" in client.get("/dev/mail/").text
    assert "(sent to staging@example.com: MAIL_REROUTE)" in client.get(f"/dev/mail/{welcome}").text
    app.config["MAIL_REROUTE"] = "drop"
    assert "none of these is sent to anyone" in client.get("/dev/mail/").text


@pytest.mark.parametrize("value", ["staging", "a@b", "two@example.com, three@example.com"])
def test_a_bad_setting_stops_the_app_at_start(value, tmp_path):
    with pytest.raises(ConfigError, match="MAIL_REROUTE must be one email address or drop"):
        from_environment(tmp_path, {"MAIL_REROUTE": value})


@pytest.mark.parametrize(
    ("value", "kept"), [("", ""), (" drop ", "drop"), ("ops@example.com", "ops@example.com")]
)
def test_good_settings_are_kept(value, kept, tmp_path):
    assert from_environment(tmp_path, {"MAIL_REROUTE": value})["MAIL_REROUTE"] == kept
