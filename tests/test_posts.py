import time
from types import SimpleNamespace

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from blog.extensions import db
from blog.models import AUTHOR, TAGGER, Post, RunningCount
from blog.posts import views
from tests import factories


def test_index_lists_posts_newest_first(client, app, author_id):
    with app.app_context():
        factories.post(author_id, title="Older")
        factories.post(author_id, title="Newer")
    html = client.get("/").get_data(as_text=True)
    assert html.index("Newer") < html.index("Older")


def test_index_paginates(client, app, author_id):
    app.config["POSTS_PER_PAGE"] = 2
    with app.app_context():
        for n in range(5):
            factories.post(author_id, title=f"Number {n}")
    first = client.get("/").get_data(as_text=True)
    assert "Number 4" in first and "Number 2" not in first
    assert "Page 1 of 3" in first
    assert "Number 0" in client.get("/?page=3").get_data(as_text=True)
    assert client.get("/?page=9").status_code == 404


def test_show_displays_the_post_with_its_tags(client, app, author_id):
    with app.app_context():
        post_id = factories.post(author_id, title="Hello", tags=["ruby", "rails"]).id
    html = client.get(f"/posts/{post_id}").get_data(as_text=True)
    assert "Hello" in html
    assert 'href="/tags/ruby"' in html and 'href="/tags/rails"' in html


def test_show_unknown_post_is_a_404_in_the_layout(client):
    response = client.get("/posts/999")
    assert response.status_code == 404
    assert b"Page not found" in response.data and b"Flask Background Jobs" in response.data


@pytest.mark.parametrize("path", ["/posts/new", "/posts/1/edit"])
def test_writing_requires_login(client, path):
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_delete_requires_login(client, app, author_id):
    with app.app_context():
        post_id = factories.post(author_id).id
    assert client.post(f"/posts/{post_id}/delete").headers["Location"].startswith("/login")


def test_create_post_with_normalised_tags(client, auth, app, author_id):
    auth.login()
    response = client.post(
        "/posts/new",
        data={
            "title": "  Background jobs  ",
            "body": "Slow work leaves the request.",
            "tags": " Ruby,rails , RUBY,, Background   Jobs ",
        },
    )
    with app.app_context():
        post = db.session.scalars(select(Post)).one()
        assert response.headers["Location"] == f"/posts/{post.id}"
        assert post.title == "Background jobs"
        assert post.author_id == author_id
        assert post.tag_names() == ["background jobs", "rails", "ruby"]
        assert post.tag_names(AUTHOR) == post.tag_names()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"title": "", "body": "b"}, "This field is required."),
        ({"title": "   ", "body": "b"}, "This field is required."),
        ({"title": "t" * 201, "body": "b"}, "longer than 200"),
        ({"title": "t", "body": ""}, "This field is required."),
        ({"title": "t", "body": "b" * 100_001}, "longer than 100000"),
        ({"title": "t", "body": "b", "tags": "x" * 41}, "longer than 40"),
        ({"title": "t", "body": "b", "tags": "a/b"}, "may hold only"),
        ({"title": "t", "body": "b", "tags": "<b>x</b>"}, "may hold only"),
        ({"title": "t", "body": "b", "tags": "İstanbul!"}, "Tag “İstanbul!” may hold only"),
        ({"title": "t", "body": "b", "tags": ",".join(f"t{n}" for n in range(16))}, "at most 15"),
    ],
)
def test_create_post_rejects_bad_input(client, auth, app, author_id, data, message):
    auth.login()
    response = client.post("/posts/new", data=data)
    assert response.status_code == 200
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(Post)).first() is None


def test_a_huge_body_is_refused_with_413(client, auth, author_id):
    auth.login()
    response = client.post("/posts/new", data={"title": "t", "body": "x" * (10 * 1024 * 1024)})
    assert response.status_code == 413
    assert b"larger than this site accepts" in response.data


def test_html_and_unicode_are_kept_and_escaped(client, auth, app, author_id):
    auth.login()
    client.post(
        "/posts/new",
        data={
            "title": "<script>alert(1)</script> ünïcødé 🚀",
            "body": "<b>bold</b> 日本語",
            "tags": "日本語, c++, c#",
        },
    )
    with app.app_context():
        post = db.session.scalars(select(Post)).one()
        assert post.title == "<script>alert(1)</script> ünïcødé 🚀"
    for path in ("/", f"/posts/{post.id}", "/tags/c%23"):
        html = client.get(path).get_data(as_text=True)
        assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt; ünïcødé 🚀" in html
    assert "&lt;b&gt;bold&lt;/b&gt; 日本語" in client.get(f"/posts/{post.id}").get_data(
        as_text=True
    )
    assert client.get("/tags/日本語").status_code == 200


def test_tags_are_lower_cased_in_any_script(client, auth, app, author_id):
    auth.login()
    tags = "İstanbul, ISTANBUL, Cafe\u0301, café, हिन्दी"
    client.post("/posts/new", data={"title": "t", "body": "b", "tags": tags})
    with app.app_context():
        post = db.session.scalars(select(Post)).one()
        assert post.tag_names() == ["café", "istanbul", "हिन्दी"]
    assert ">istanbul</a>" in client.get(f"/posts/{post.id}").get_data(as_text=True)
    assert client.get("/tags/İstanbul").status_code == 200


def test_edit_updates_the_post_and_its_author_tags(client, auth, app, author_id):
    with app.app_context():
        post = factories.post(author_id, title="Draft", tags=["one", "two"])
        post.set_tags(["robot"], TAGGER)
        db.session.commit()
        post_id = post.id
    auth.login()
    form = client.get(f"/posts/{post_id}/edit").get_data(as_text=True)
    assert 'value="one, two"' in form
    response = client.post(
        f"/posts/{post_id}/edit", data={"title": "Final", "body": "Done.", "tags": "two, three"}
    )
    assert response.headers["Location"] == f"/posts/{post_id}"
    with app.app_context():
        post = db.session.get(Post, post_id)
        assert post.title == "Final"
        assert post.content_version == 2
        assert post.updated_at > post.created_at
        assert post.tag_names(AUTHOR) == ["three", "two"]
        assert post.tag_names(TAGGER) == ["robot"]


def test_another_user_cannot_edit_or_delete(client, auth, app, author_id, other_user_id):
    with app.app_context():
        post_id = factories.post(author_id, title="Mine").id
    auth.login("grace@example.com")
    assert client.get(f"/posts/{post_id}/edit").status_code == 403
    assert (
        client.post(f"/posts/{post_id}/edit", data={"title": "x", "body": "y"}).status_code == 403
    )
    assert client.get(f"/posts/{post_id}/delete").status_code == 403
    assert client.post(f"/posts/{post_id}/delete").status_code == 403
    with app.app_context():
        assert db.session.get(Post, post_id).title == "Mine"


def test_delete_asks_first_on_a_page_of_its_own(client, auth, app, author_id):
    with app.app_context():
        post_id = factories.post(author_id, title="Keep me?").id
    auth.login()
    show = client.get(f"/posts/{post_id}").get_data(as_text=True)
    assert f'href="/posts/{post_id}/delete"' in show  # a link to the question, not a POST

    question = client.get(f"/posts/{post_id}/delete").get_data(as_text=True)
    assert "Delete “Keep me?”?" in question
    assert f'<form class="card" method="post" action="/posts/{post_id}/delete">' in question
    assert f'href="/posts/{post_id}">Keep it</a>' in question
    with app.app_context():
        assert db.session.get(Post, post_id) is not None


def test_author_deletes_a_post(client, auth, app, author_id):
    with app.app_context():
        post_id = factories.post(author_id, tags=["gone"]).id
    auth.login()
    assert client.post(f"/posts/{post_id}/delete").headers["Location"] == "/"
    with app.app_context():
        assert db.session.get(Post, post_id) is None
    assert client.get(f"/posts/{post_id}").status_code == 404


def test_tag_page_lists_only_posts_with_that_tag(client, app, author_id):
    with app.app_context():
        factories.post(author_id, title="About Redis", tags=["redis"])
        factories.post(author_id, title="About Postgres", tags=["postgres"])
    html = client.get("/tags/Redis").get_data(as_text=True)
    assert "About Redis" in html and "About Postgres" not in html
    assert client.get("/tags/nothing-here").status_code == 404


def test_tags_show_who_added_them(client, app, author_id):
    with app.app_context():
        post = factories.post(author_id, tags=["mine"])
        post.set_tags(["found"], TAGGER)
        db.session.commit()
        post_id = post.id
    html = client.get(f"/posts/{post_id}").get_data(as_text=True)
    assert 'class="tag tag-author"' in html and "Added by the author" in html
    assert 'class="tag tag-tagger"' in html and "Added by the tagger" in html


def test_the_index_loads_authors_and_tags_in_a_few_queries(client, app, author_id, other_user_id):
    with app.app_context():
        for n in range(10):
            factories.post(author_id if n % 2 else other_user_id, tags=[f"tag{n}", "shared"])
        statements = []
        sa.event.listen(
            db.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
        )
    assert "tag9" in client.get("/").get_data(as_text=True)
    assert 0 < len(statements) <= 6, statements  # not one query per post


def test_a_post_page_is_one_query_with_its_author_and_tags(client, app, author_id):
    with app.app_context():
        post_id = factories.post(author_id, title="Hello", tags=["ruby", "rails"]).id
        statements = []
        sa.event.listen(
            db.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
        )
    html = client.get(f"/posts/{post_id}").get_data(as_text=True)
    assert "ada@example.com" in html and 'href="/tags/rails"' in html
    assert len(statements) == 1, statements


def test_the_index_takes_its_number_of_pages_from_the_running_count(client, app, author_id):
    app.config["POSTS_PER_PAGE"] = 2
    with app.app_context():
        for n in range(3):
            factories.post(author_id, title=f"Number {n}")
        # As refresh_stats left it a minute ago, before the last post.
        db.session.add(RunningCount(name="posts", value=2))
        db.session.commit()
        statements = []
        sa.event.listen(
            db.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
        )
    first = client.get("/").get_data(as_text=True)
    assert "Number 2" in first and "Number 1" in first  # the rows themselves are current
    assert "Page 1 of" not in first  # one page, as far as the count knows
    assert not [s for s in statements if "count(" in s.lower()], statements
    assert "Number 0" in client.get("/?page=2").get_data(as_text=True)
    assert client.get("/?page=3").status_code == 404


def test_writing_a_post_sends_its_rows_and_reads_nothing_back(client, auth, app, author_id):
    auth.login()
    with app.app_context():  # the tags exist already
        factories.post(author_id, tags=["redis", "rq"])
        statements = []
        sa.event.listen(
            db.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
        )
    response = client.post("/posts/new", data={"title": "t", "body": "b", "tags": "redis, rq"})
    assert response.headers["Location"].startswith("/posts/")
    verbs = [statement.split()[0] for statement in statements]
    # The signed-in user, the post, its tags' ids, its links, its tagging state: no DELETE of
    # links a new post cannot have, and no SELECT of the post it has just written.
    assert verbs == ["SELECT", "INSERT", "SELECT", "INSERT", "UPDATE"], statements


def test_pages_link_an_icon_that_is_there(client):
    page = client.get("/").get_data(as_text=True)
    assert '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">' in page
    with client.get("/static/favicon.svg") as icon:
        assert icon.status_code == 200
        assert icon.mimetype == "image/svg+xml"
    assert client.get("/favicon.ico").headers["Location"].endswith("/static/favicon.svg")


def test_each_web_process_reads_the_running_count_at_most_every_few_seconds(
    client, app, author_id, monkeypatch
):
    app.config["PAGE_CACHE_SECONDS"] = 0  # each visit makes the page (blog.page_cache)
    app.config["POSTS_PER_PAGE"] = 2
    with app.app_context():
        for n in range(5):
            factories.post(author_id, title=f"Number {n}")
        count = RunningCount(name="posts", value=5)
        db.session.add(count)
        db.session.commit()
        statements = []
        sa.event.listen(
            db.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
        )
    assert "Page 1 of 3" in client.get("/").get_data(as_text=True)
    with app.app_context():
        db.session.execute(sa.update(RunningCount).values(value=1))
        db.session.commit()
    statements.clear()
    assert "Page 1 of 3" in client.get("/").get_data(as_text=True)  # as read a moment ago
    assert not [s for s in statements if "running_counts" in s], statements
    later = time.monotonic() + views.POST_COUNT_SECONDS + 1
    monkeypatch.setattr(views, "time", SimpleNamespace(monotonic=lambda: later))
    assert "Page 1 of" not in client.get("/").get_data(as_text=True)  # read again: one page


def test_the_front_page_is_two_queries_whatever_its_posts_tags(client, app, author_id):
    app.config["PAGE_CACHE_SECONDS"] = 0  # each visit makes the page (blog.page_cache)
    app.config["POSTS_PER_PAGE"] = 2
    with app.app_context():
        for n in range(3):
            factories.post(author_id, title=f"Number {n}", tags=["ruby", "rails", f"n{n}"])
        db.session.add(RunningCount(name="posts", value=3))
        db.session.commit()
        statements = []
        sa.event.listen(
            db.engine, "before_cursor_execute", lambda *args: statements.append(args[2])
        )
    client.get("/")  # reads the running count, kept for a few seconds
    statements.clear()
    html = client.get("/").get_data(as_text=True)
    assert "Number 2" in html and "Number 1" in html and "Number 0" not in html
    assert 'href="/tags/n2"' in html and 'href="/tags/n1"' in html and "/tags/n0" not in html
    assert html.count('href="/tags/rails"') == 2
    assert len(statements) == 2, statements  # the posts and their authors; their tags
