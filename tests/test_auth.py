import html as html_text
import re

import pytest
from sqlalchemy import select

from blog.auth.policy import PolicyError, check_password, checked_email
from blog.auth.views import safe_next
from blog.extensions import db
from blog.models import Email, User
from blog.queues import get_queue
from tests import factories
from tests.support import html


def flashes(client) -> list[tuple[str, str]]:
    with client.session_transaction() as session:
        return session.get("_flashes", [])


def test_signup_creates_the_account_and_queues_a_welcome_email(client, auth, app):
    response = auth.signup("  New@Example.COM ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login"
    with app.app_context():
        user = User.by_email("new@example.com")
        assert user.email == "new@example.com"
        assert user.password_hash != "correct horse"
        assert user.check_password("correct horse")
        email = db.session.scalars(select(Email)).one()
        assert (email.user_id, email.kind, email.state) == (user.id, "welcome", "queued")
        assert get_queue("mailers").job_ids == [f"send-email-{email.id}"]
    page = client.get("/login").get_data(as_text=True)
    assert "a welcome email is on its way" in page
    assert ("dev mailbox", "/dev/mail/") in html.links(page)
    assert auth.login("new@example.com", "correct horse").headers["Location"] == "/"


def test_outside_development_the_signup_flash_has_no_mailbox_link(client, auth, app):
    app.config["DEV_MAILBOX"] = False
    auth.signup("new@example.com")
    assert "dev mailbox" not in client.get("/login").get_data(as_text=True)


def test_signup_answers_a_taken_email_exactly_as_a_new_one(client, auth, app, author_id):
    new = auth.signup("new@example.com")
    new_flashes = flashes(client)
    client.get("/login")  # shows the flash, and so clears it
    taken = auth.signup("ADA@example.com", password="another password")
    taken_flashes = flashes(client)

    assert (taken.status_code, taken.headers["Location"]) == (302, "/login")
    assert (new.status_code, new.headers["Location"]) == (302, "/login")
    assert taken.data == new.data
    assert taken_flashes == [
        (category, message.replace("new@example.com", "ada@example.com"))
        for category, message in new_flashes
    ]
    with app.app_context():
        assert db.session.scalar(select(db.func.count(User.id))) == 2
        assert User.by_email("ada@example.com").check_password(factories.PASSWORD)
        assert [e.to_address for e in db.session.scalars(select(Email))] == ["new@example.com"]
        assert get_queue("mailers").count == 1


def test_signup_does_not_log_in_a_new_account(client, auth):
    # Logged in after signing up with a new address but not with a taken one: that would
    # tell who has an account.
    auth.signup("new@example.com")
    assert "Log out" not in client.get("/").get_data(as_text=True)


def test_signup_is_rate_limited_per_client_address(client, auth):
    for _ in range(3):
        assert client.post("/signup", data={}).status_code == 200  # a form with errors: free
    for n in range(5):
        assert auth.signup(f"user{n}@example.com").status_code == 302
    response = auth.signup("one-too-many@example.com")
    assert response.status_code == 429
    assert b"You have done that too often" in response.data
    assert response.headers["Retry-After"]
    assert client.get("/signup").status_code == 200
    other = client.post("/signup", data={}, environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert other.status_code == 200


def test_an_address_the_mail_servers_may_not_take_is_refused(auth, app):
    response = auth.signup("zoë@example.com")
    assert response.status_code == 200
    assert b"Invalid email address:" in response.data


@pytest.mark.parametrize(
    ("email", "password"),
    [("zoë@example.com", "correct horse"), ("not-an-email", "x" * 10), ("a@example.com", "short")],
)
def test_the_signup_form_and_the_command_line_refuse_the_same_accounts(
    auth, runner, email, password
):
    try:
        checked_email(email)
        check_password(password)
    except PolicyError as error:
        why = str(error)
    page = auth.signup(email, password).get_data(as_text=True)
    result = runner.invoke(args=["users", "create", email, "--password", password])
    assert why in html_text.unescape(page)
    assert result.exit_code == 2 and why in result.output


def test_a_logged_in_user_is_not_shown_the_login_page(client, auth, author_id):
    auth.login()
    assert client.get("/login").headers["Location"] == "/"


def test_behind_a_proxy_the_limit_counts_the_forwarded_client_address(app, make_app):
    client = make_app(TRUSTED_PROXIES=1).test_client()

    def signup_from(address, n):
        data = {"email": f"u{n}@example.com", "password": "x" * 10, "confirm": "x" * 10}
        return client.post("/signup", data=data, headers={"X-Forwarded-For": address})

    assert [signup_from("192.0.2.1", n).status_code for n in range(6)][-1] == 429
    assert signup_from("192.0.2.2", 6).status_code == 302


@pytest.mark.parametrize(
    ("email", "password", "confirm", "message"),
    [
        ("", "correct horse", "correct horse", b"This field is required."),
        ("not-an-email", "correct horse", "correct horse", b"Invalid email address:"),
        ("a@" + "b" * 260 + ".com", "correct horse", "correct horse", b"at most 254 characters"),
        ("a@example.com", "short", "short", b"A password has 8 to 200 characters."),
        ("a@example.com", "correct horse", "other horse", b"The passwords do not match."),
    ],
)
def test_signup_rejects_bad_input(auth, app, email, password, confirm, message):
    response = auth.signup(email, password, confirm)
    assert response.status_code == 200
    assert message in response.data
    with app.app_context():
        assert db.session.scalar(select(db.func.count(User.id))) == 0


def test_login_and_logout(client, auth, author_id):
    assert auth.login().headers["Location"] == "/"
    assert b"Log out" in client.get("/").data
    assert auth.logout().status_code == 302
    assert b"Log in" in client.get("/").data


def test_logout_is_post_only(client, auth, author_id):
    auth.login()
    assert client.get("/logout").status_code == 405


@pytest.mark.parametrize(
    ("email", "password"),
    [("ada@example.com", "wrong password"), ("nobody@example.com", factories.PASSWORD)],
)
def test_login_fails_the_same_way_for_wrong_email_or_password(auth, author_id, email, password):
    response = auth.login(email, password)
    assert response.status_code == 200
    assert b"Wrong email or password." in response.data


def test_remember_me_sets_a_remember_cookie(client, auth, author_id):
    auth.login(remember="y")
    assert client.get_cookie("remember_token") is not None


def test_login_follows_next_on_this_site(auth, author_id):
    response = auth.login(next="/posts/new")
    assert response.headers["Location"] == "/posts/new"


@pytest.mark.parametrize(
    "target",
    [
        "//evil.com",
        "/\\evil.com",
        "https://evil.com",
        "http://evil.com/posts",
        "javascript:alert(1)",
        "%2F%2Fevil.com",
        "/%2F%2Fevil.com",
        "/%2Fevil.com",
        "/%5Cevil.com",
        "/%252F%252Fevil.com",
        "%68ttps://evil.com",
        "javascript%3Aalert(1)",
        "/\t/evil.com",
        "/%09/evil.com",
        " //evil.com",
        "",
        None,
    ],
)
def test_next_never_leaves_the_site(target):
    assert safe_next(target) == "/"


@pytest.mark.parametrize("target", ["/", "/posts/3", "/tags/c%23?page=2", "/posts/new#top"])
def test_next_keeps_paths_on_this_site(target):
    assert safe_next(target) == target


def test_login_page_carries_next_into_the_form(client):
    response = client.get("/login?next=/posts/new")
    assert b'value="/posts/new"' in response.data


def test_login_with_evil_next_lands_home(auth, author_id):
    assert auth.login(next="//evil.com").headers["Location"] == "/"


def test_credential_fields_tell_password_managers_what_they_hold(client):
    def autocomplete(page: str) -> dict[str, str]:
        inputs = re.findall(r"<input [^>]*>", page)
        return {
            re.search(r' id="(\w+)"', tag)[1]: re.search(r'autocomplete="([\w-]+)"', tag)[1]
            for tag in inputs
            if "autocomplete=" in tag
        }

    assert autocomplete(client.get("/signup").get_data(as_text=True)) == {
        "email": "username",
        "password": "new-password",
        "confirm": "new-password",
    }
    assert autocomplete(client.get("/login").get_data(as_text=True)) == {
        "email": "username",
        "password": "current-password",
    }


def test_a_refused_signup_keeps_the_form_and_says_when_to_try_again(client, auth, app):
    app.config["SIGNUP_RATE_LIMIT"] = "1 per hour"
    assert auth.signup("first@example.com").status_code == 302
    refused = auth.signup("second@example.com", password="typed secret")
    assert refused.status_code == 429
    assert re.search(r"Please try again in \d+ minutes\.", refused.text)
    assert 'value="second@example.com"' in refused.text
    assert "typed secret" not in refused.text
    assert "<h1>Sign up</h1>" in refused.text
    assert "SIGNUP_RATE_LIMIT" not in refused.text  # testing; development names it


@pytest.mark.parametrize(("env", "named"), [("development", True), ("production", False)])
def test_in_development_the_signup_limit_names_its_setting(client, auth, app, env, named):
    app.config.update(APP_ENV=env, SIGNUP_RATE_LIMIT="1 per hour")
    auth.signup("first@example.com")
    refused = auth.signup("second@example.com")
    assert refused.status_code == 429
    assert ("SIGNUP_RATE_LIMIT, now 1 per hour: raise it in .env" in refused.text) is named
