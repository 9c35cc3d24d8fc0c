"""Login throttling: per client address and per account, and no way to lock a user out."""

import re

import pytest

from blog.errors import in_words
from tests import factories

WRONG = "not the password"


@pytest.fixture
def limits(app):
    app.config["LOGIN_RATE_LIMIT_PER_ADDRESS"] = "5 per hour"
    app.config["LOGIN_RATE_LIMIT_PER_ACCOUNT"] = "3 per hour"


def log_in(client, email, password, address="192.0.2.1"):
    return client.post(
        "/login",
        data={"email": email, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def test_one_address_is_stopped_after_its_failed_logins(
    app, client, author_id, other_user_id, limits
):
    for n in range(5):  # on several accounts, so the per-account limit does not come first
        email = ("ada", "grace", "nobody")[n % 3] + "@example.com"
        assert log_in(client, email, WRONG).status_code == 200
    refused = log_in(client, "ada@example.com", factories.PASSWORD)
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert re.search(r"Please try again in (\d+ minutes|1 hour)\.", refused.text)
    # Another address is not concerned.
    assert log_in(client, "ada@example.com", factories.PASSWORD, "192.0.2.2").status_code == 302


def test_the_refused_form_keeps_what_was_typed_but_the_password(app, client, author_id, limits):
    app.config["LOGIN_RATE_LIMIT_PER_ADDRESS"] = "1 per hour"
    log_in(client, "ada@example.com", WRONG)
    refused = client.post(
        "/login?next=/posts/new",
        data={"email": "ada@example.com", "password": "s3cret-typed", "next": "/posts/new"},
        environ_base={"REMOTE_ADDR": "192.0.2.1"},
    )
    assert refused.status_code == 429
    assert 'value="ada@example.com"' in refused.text
    assert 'value="/posts/new"' in refused.text
    assert "s3cret-typed" not in refused.text
    assert "<h1>Log in</h1>" in refused.text


def test_many_addresses_are_stopped_on_one_account(app, client, author_id, limits):
    for n in range(3):
        assert log_in(client, "ada@example.com", WRONG, f"198.51.100.{n}").status_code == 200
    assert log_in(client, "ADA@example.com ", WRONG, "198.51.100.9").status_code == 429
    # A browser new to the account waits too, even with the right password.
    newcomer = app.test_client()
    assert log_in(newcomer, "ada@example.com", factories.PASSWORD, "203.0.113.5").status_code == 429


def test_an_attacker_cannot_lock_the_user_out_of_their_own_browser(app, client, author_id, limits):
    # Ada logged in from this browser before: it keeps a signed cookie that says so.
    assert log_in(client, "ada@example.com", factories.PASSWORD).status_code == 302
    client.post("/logout")
    # Then someone guesses, from everywhere, until the account is limited for everyone else.
    attacker = app.test_client()
    for n in range(4):
        log_in(attacker, "ada@example.com", WRONG, f"198.51.100.{n}")
    assert (
        log_in(attacker, "ada@example.com", factories.PASSWORD, "198.51.100.9").status_code == 429
    )
    # Ada's browser still gets in, typo and all.
    assert log_in(client, "ada@example.com", WRONG).status_code == 200
    assert log_in(client, "ada@example.com", factories.PASSWORD).status_code == 302


def test_a_forged_known_browser_cookie_counts_as_unknown(app, client, author_id, limits):
    for n in range(3):
        log_in(client, "ada@example.com", WRONG, f"198.51.100.{n}")
    client.set_cookie("known_browser", "forged.value", path="/login")
    assert log_in(client, "ada@example.com", factories.PASSWORD).status_code == 429


def test_a_successful_login_does_not_count(app, client, author_id, limits):
    for _ in range(6):
        assert log_in(client, "ada@example.com", factories.PASSWORD).status_code == 302
        client.post("/logout")


def test_a_missing_account_costs_the_same_password_check(app, client, author_id, monkeypatch):
    """Equal work, so equal time: one hash of the same kind, account or not."""
    import werkzeug.security

    checked = []
    original = werkzeug.security._hash_internal

    def spy(method, salt, password):
        checked.append(method)
        return original(method, salt, password)

    monkeypatch.setattr(werkzeug.security, "_hash_internal", spy)
    log_in(client, "ada@example.com", WRONG)
    existing, checked[:] = list(checked), []
    log_in(client, "nobody@example.com", WRONG)
    assert checked == existing == [app.config["PASSWORD_HASH_METHOD"]]


@pytest.mark.parametrize(
    ("seconds", "words"),
    [
        (0.2, "1 second"),
        (40, "40 seconds"),
        (61, "61 seconds"),
        (100, "2 minutes"),
        (3599, "60 minutes"),
        (5400, "90 minutes"),
        (5401, "2 hours"),
    ],
)
def test_the_wait_in_words_is_rounded_up(seconds, words):
    assert in_words(seconds) == words
