"""The front page made once per change for visitors who are not signed in (blog.page_cache)."""

import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from flask import Flask
from redis.exceptions import ConnectionError as RedisConnectionError

from blog import page_cache, redis_keys
from blog.extensions import db
from blog.models import Post, RunningCount
from tests import factories
from workers.tagging import auto_tag_post


@pytest.fixture
def statements(app):
    """The SQL the app sends, from now on."""
    sent = []
    with app.app_context():
        sa.event.listen(db.engine, "before_cursor_execute", lambda *args: sent.append(args[2]))
    return sent


def front_page(client, path="/") -> str:
    response = client.get(path)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def visit_twice(client, statements, path="/") -> str:
    """The page, made for one visit and sent again for the next (no query)."""
    first = front_page(client, path)
    statements.clear()
    again = front_page(client, path)
    assert statements == [], "the page was made again"
    assert again == first
    return again


def test_a_visitor_is_sent_the_page_made_for_the_last_one(client, app, author_id, statements):
    with app.app_context():
        factories.post(author_id, title="Hello")
    assert "Hello" in visit_twice(client, statements)


def test_a_new_post_shows_at_once(client, app, author_id, statements):
    visit_twice(client, statements)
    with app.app_context():
        factories.post(author_id, title="Just written")
    assert "Just written" in front_page(client)


def test_an_edit_and_a_delete_show_at_once(client, app, author_id, statements):
    with app.app_context():
        post_id = factories.post(author_id, title="First draft").id
    visit_twice(client, statements)
    with app.app_context():
        post = db.session.get(Post, post_id)
        post.edit("Second draft", post.body)
        db.session.commit()
    assert "Second draft" in visit_twice(client, statements)
    with app.app_context():
        db.session.delete(db.session.get(Post, post_id))
        db.session.commit()
    assert "Second draft" not in front_page(client)


def test_the_tags_a_job_adds_show_at_once(client, app, author_id, statements):
    """The tagging job writes the links with statements of its own, not the ORM's."""
    with app.app_context():
        post_id = factories.post(author_id, title="Redis queues", body="Redis queues jobs.").id
    assert 'href="/tags/redis"' not in visit_twice(client, statements)
    with app.app_context():
        assert "redis" in auto_tag_post(post_id)
    assert 'href="/tags/redis"' in front_page(client)


def test_a_write_that_is_rolled_back_keeps_the_page(client, app, author_id, statements):
    with app.app_context():
        factories.post(author_id, title="Kept")
    visit_twice(client, statements)
    with app.app_context():
        db.session.execute(sa.update(Post).values(title="Never committed"))
        db.session.rollback()
        db.session.add(RunningCount(name="unrelated", value=1))  # not on the front page
        db.session.commit()
    statements.clear()
    assert "Kept" in front_page(client)
    assert statements == []


def test_each_page_number_is_kept_apart(client, app, author_id, statements):
    app.config["POSTS_PER_PAGE"] = 1
    with app.app_context():
        factories.post(author_id, title="Older")
        factories.post(author_id, title="Newer")
    assert "Newer" in visit_twice(client, statements)
    assert "Older" in visit_twice(client, statements, "/?page=2")
    assert "Newer" in front_page(client, "/?page=1")
    assert client.get("/?page=9").status_code == 404


def test_a_signed_in_user_never_gets_a_kept_page_nor_gives_one(app, author_id, auth, client):
    visitor = app.test_client()
    assert "Log in" in front_page(visitor)
    auth.login()
    assert "ada@example.com" in front_page(client)  # not the visitor's page
    assert "ada@example.com" not in front_page(visitor)  # nor the user's page to the visitor
    assert "Log in" in front_page(visitor)


def test_a_page_with_a_message_is_made_for_that_visit_only(app, author_id, auth, client):
    auth.login()
    auth.logout()  # "You are logged out.", on the next page
    assert "You are logged out." in front_page(client)
    assert "You are logged out." not in front_page(client)
    assert "You are logged out." not in front_page(app.test_client())


def test_a_browser_about_to_be_remembered_gets_its_own_page(app, client, statements):
    visit_twice(client, statements)
    client.set_cookie("remember_token", "anything")
    statements.clear()
    front_page(client)
    assert statements, "a kept page was sent"


def test_a_page_is_kept_at_most_page_cache_seconds(client, app, author_id, statements, monkeypatch):
    """A change made behind the session's back shows that late at most."""
    with app.app_context():
        factories.post(author_id, title="Before")
    visit_twice(client, statements)
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.update(Post.__table__).values(title="Behind its back"))
    assert "Before" in front_page(client)
    later = time.monotonic() + app.config["PAGE_CACHE_SECONDS"] + 1
    monkeypatch.setattr(page_cache, "time", SimpleNamespace(monotonic=lambda: later))
    assert "Behind its back" in front_page(client)


def test_no_page_is_kept_when_turned_off(client, app, statements):
    app.config["PAGE_CACHE_SECONDS"] = 0
    front_page(client)
    statements.clear()
    front_page(client)
    assert statements


def test_a_redis_that_lost_its_data_serves_no_old_page(client, app, author_id, statements):
    with app.app_context():
        factories.post(author_id, title="Before")
    visit_twice(client, statements)
    app.extensions["redis"].flushdb()
    with app.app_context(), db.engine.begin() as connection:
        connection.execute(sa.update(Post.__table__).values(title="After"))
    assert "After" in front_page(client)
    assert "After" in visit_twice(client, statements)  # kept again, under a new version


def test_without_redis_every_visit_gets_a_page_made_for_it(make_app, caplog):
    app: Flask = make_app(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    with app.app_context():
        db.create_all()
        factories.user("ada@example.com")
        factories.post(1, title="Still here")
    client = app.test_client()
    assert "Still here" in front_page(client)
    assert "page cache skipped" in caplog.text


def test_the_version_is_in_redis_under_a_kind_of_its_own(app, client):
    front_page(client)
    assert app.extensions["redis"].get(page_cache.VERSION_KEY)
    assert redis_keys.kind_of(page_cache.VERSION_KEY) == "page cache"


def test_a_connection_error_while_changing_the_version_is_logged(app, monkeypatch, caplog):
    def refuse(*args, **kwargs):
        raise RedisConnectionError("refused")

    with app.app_context():
        monkeypatch.setattr(app.extensions["redis"], "set", refuse)
        page_cache.new_version()
    assert "page cache version not changed" in caplog.text


def test_two_apps_on_one_redis_keep_their_own_pages(make_app, app, author_id, client, tmp_path):
    """Each app (each process, in production) keeps its own; sharing Redis shares no page."""
    with app.app_context():
        factories.post(author_id, title="On the first")
    assert "On the first" in front_page(client)
    other = make_app(
        SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path / 'other.sqlite3'}",
        SQLALCHEMY_ENGINE_OPTIONS={},
    )
    other.extensions["redis"] = app.extensions["redis"]
    with other.app_context():
        db.create_all()
    assert "On the first" not in front_page(other.test_client())
