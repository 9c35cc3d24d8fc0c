import pytest
from sqlalchemy import select

from blog.auth.views import safe_next
from blog.extensions import db
from blog.models import Email, User
from blog.queues import get_queue
from tests import factories


def test_signup_creates_a_user_and_logs_them_in(client, auth, app):
    response = auth.signup("  New@Example.COM ")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    with app.app_context():
        user = User.by_email("new@example.com")
        assert user.email == "new@example.com"
        assert user.password_hash != "correct horse"
        assert user.check_password("correct horse")
        email = db.session.scalars(select(Email)).one()
        assert (email.user_id, email.kind, email.state) == (user.id, "welcome", "queued")
        assert get_queue("mailers").job_ids == [f"send-email-{email.id}"]
    assert b"new@example.com" in client.get("/").data


@pytest.mark.parametrize(
    ("email", "password", "confirm", "message"),
    [
        ("", "correct horse", "correct horse", b"This field is required."),
        ("not-an-email", "correct horse", "correct horse", b"Invalid email address."),
        ("a@" + "b" * 260 + ".com", "correct horse", "correct horse", b"longer than 254"),
        ("a@example.com", "short", "short", b"between 8 and 200"),
        ("a@example.com", "correct horse", "other horse", b"The passwords do not match."),
    ],
)
def test_signup_rejects_bad_input(auth, app, email, password, confirm, message):
    response = auth.signup(email, password, confirm)
    assert response.status_code == 200
    assert message in response.data
    with app.app_context():
        assert db.session.scalar(select(db.func.count(User.id))) == 0


def test_signup_rejects_a_taken_email_in_any_case(auth, ada):
    response = auth.signup("ADA@example.com")
    assert response.status_code == 200
    assert b"already exists" in response.data


def test_login_and_logout(client, auth, ada):
    assert auth.login().headers["Location"] == "/"
    assert b"Log out" in client.get("/").data
    assert auth.logout().status_code == 302
    assert b"Log in" in client.get("/").data


def test_logout_is_post_only(client, auth, ada):
    auth.login()
    assert client.get("/logout").status_code == 405


@pytest.mark.parametrize(
    ("email", "password"),
    [("ada@example.com", "wrong password"), ("nobody@example.com", factories.PASSWORD)],
)
def test_login_fails_the_same_way_for_wrong_email_or_password(auth, ada, email, password):
    response = auth.login(email, password)
    assert response.status_code == 200
    assert b"Wrong email or password." in response.data


def test_remember_me_sets_a_remember_cookie(client, auth, ada):
    auth.login(remember="y")
    assert client.get_cookie("remember_token") is not None


def test_login_follows_next_on_this_site(auth, ada):
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


def test_login_with_evil_next_lands_home(auth, ada):
    assert auth.login(next="//evil.com").headers["Location"] == "/"
