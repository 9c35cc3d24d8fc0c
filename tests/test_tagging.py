"""Auto-tagging: from the form, through the queue, to the tags on the page."""

import logging
import re

import pytest
from rq.job import Job, JobStatus
from sqlalchemy import select

from blog.extensions import db
from blog.models import AUTHOR, TAGGER, Post, TaggingState
from blog.queues import get_queue
from blog.tagger import Tagger, TaggerUnavailable, extract_tags
from tests import factories
from workers.tagging import TAGGING_RETRIES, auto_tag_post, tagging_job_id

TITLE = "Background jobs with Redis"
BODY = "Redis keeps the queue. Background jobs leave the request; Redis is fast."


def write_post(client, **fields):
    data = {"title": TITLE, "body": BODY, "tags": "mine", **fields}
    return client.post("/posts/new", data=data)


def the_post() -> Post:
    return db.session.scalars(select(Post)).one()


def test_creating_a_post_enqueues_tagging_and_answers_at_once(client, auth, app, author_id):
    auth.login()
    response = write_post(client)
    assert response.status_code == 302
    with app.app_context():
        post = the_post()
        assert post.tagging_state == TaggingState.PENDING
        assert post.tag_names() == ["mine"]
        assert get_queue("default").job_ids == [f"tag-post-{post.id}-v1"]
        job = Job.fetch(f"tag-post-{post.id}-v1", connection=app.extensions["redis"])
        assert job.args == (post.id,)
        assert job.retries_left == TAGGING_RETRIES
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert 'data-state="pending"' in page
    assert "The tagger is reading this post" in page


def test_the_worker_adds_the_taggers_tags(client, auth, app, author_id, run_jobs):
    auth.login()
    write_post(client)
    assert run_jobs() is True
    with app.app_context():
        post = the_post()
        assert post.tagging_state == TaggingState.DONE
        assert post.tag_names(AUTHOR) == ["mine"]
        assert post.tag_names(TAGGER) == sorted(extract_tags(TITLE, BODY))
        post_id = post.id
    status = client.get(f"/posts/{post_id}/tags.json").get_json()
    assert status["state"] == "done"
    assert {"name": "redis", "source": "tagger", "url": "/tags/redis"} in status["tags"]


def test_tagging_twice_leaves_the_same_tags(app_ctx, author_id):
    post_id = factories.post(author_id, title=TITLE, body=BODY).id
    first = auto_tag_post(post_id)
    tags = the_post().tag_names()
    assert auto_tag_post(post_id) == first
    assert the_post().tag_names() == tags


def test_editing_a_post_retags_it_and_drops_the_old_taggers_tags(
    client, auth, app, author_id, run_jobs
):
    auth.login()
    write_post(client, title="All about Redis", body="Redis Redis Redis")
    run_jobs()
    with app.app_context():
        post_id = the_post().id
    client.post(
        f"/posts/{post_id}/edit",
        data={"title": "All about Postgres", "body": "Postgres Postgres", "tags": "mine"},
    )
    with app.app_context():
        assert get_queue("default").job_ids == [f"tag-post-{post_id}-v2"]
        assert the_post().tagging_state == TaggingState.PENDING
    run_jobs()
    with app.app_context():
        names = the_post().tag_names()
        assert "postgres" in names and "redis" not in names and "mine" in names


def test_a_job_for_an_older_version_does_not_overwrite_newer_tags(app_ctx, author_id, monkeypatch):
    post_id = factories.post(author_id, title="Old title", body="old words").id
    real_tags_for = Tagger.tags_for

    def edit_while_tagging(self, title, body):
        names = real_tags_for(self, title, body)
        post = db.session.get(Post, post_id)  # the author saves an edit meanwhile
        post.edit("New title", "new words")
        db.session.commit()
        return names

    monkeypatch.setattr(Tagger, "tags_for", edit_while_tagging)
    auto_tag_post(post_id)
    post = db.session.get(Post, post_id)
    assert post.tag_names(TAGGER) == []
    assert post.tagging_state is None


def test_a_deleted_post_is_not_an_error(app_ctx):
    assert auto_tag_post(12345) is None


def test_a_flaky_tagger_is_retried_until_it_succeeds(
    client, auth, app, author_id, run_jobs, monkeypatch
):
    calls = []
    real_tags_for = Tagger.tags_for

    def flaky(self, title, body):
        calls.append(title)
        if len(calls) <= 2:
            raise TaggerUnavailable("timed out")
        return real_tags_for(self, title, body)

    monkeypatch.setattr(Tagger, "tags_for", flaky)
    auth.login()
    write_post(client)
    run_jobs()
    assert len(calls) == 3
    with app.app_context():
        post = the_post()
        assert post.tagging_state == TaggingState.DONE
        assert "redis" in post.tag_names(TAGGER)
        assert get_queue("default").failed_job_registry.count == 0


def test_a_tagger_that_never_answers_ends_failed(client, auth, app, author_id, run_jobs):
    app.config["TAGGER_FAILURE_RATE"] = 1
    auth.login()
    write_post(client)
    run_jobs()
    with app.app_context():
        post = the_post()
        assert post.tagging_state == TaggingState.FAILED
        assert post.tag_names() == ["mine"]
        failed = get_queue("default").failed_job_registry
        assert failed.get_job_ids() == [f"tag-post-{post.id}-v1"]
        job = Job.fetch(failed.get_job_ids()[0], connection=app.extensions["redis"])
        assert job.get_status() == JobStatus.FAILED
        assert "TaggerUnavailable" in job.latest_result().exc_string
        post_id = post.id
    assert "could not tag this post" in client.get(f"/posts/{post_id}").get_data(as_text=True)


def test_inline_mode_tags_inside_the_request(client, auth, app, author_id):
    app.config["TAGGING_MODE"] = "inline"
    auth.login()
    write_post(client)
    with app.app_context():
        assert get_queue("default").count == 0
        post = the_post()
        assert post.tagging_state == TaggingState.DONE
        assert "redis" in post.tag_names(TAGGER)


def test_inline_box_in_development_tags_inside_the_request(client, auth, app, author_id):
    app.config["APP_ENV"] = "development"
    auth.login()
    assert b'name="tag_inline"' in client.get("/posts/new").data
    write_post(client, tag_inline="1")
    with app.app_context():
        assert get_queue("default").count == 0
        assert the_post().tagging_state == TaggingState.DONE


def test_inline_box_is_ignored_outside_development(client, auth, app, author_id):
    app.config["APP_ENV"] = "production"
    auth.login()
    assert b'name="tag_inline"' not in client.get("/posts/new").data
    write_post(client, tag_inline="1")
    with app.app_context():
        assert get_queue("default").count == 1


def test_inline_mode_with_a_failing_tagger_still_saves_the_post(client, auth, app, author_id):
    app.config.update(TAGGING_MODE="inline", TAGGER_FAILURE_RATE=1)
    auth.login()
    response = write_post(client)
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "The tagger failed" in page
    with app.app_context():
        assert the_post().tagging_state == TaggingState.FAILED


def test_every_response_reports_its_duration(client):
    response = client.get("/")
    assert response.headers["Server-Timing"].startswith("app;dur=")
    assert "This page took" in response.get_data(as_text=True)


def test_the_worker_logs_each_job_start_and_end(client, auth, app, author_id, run_jobs, caplog):
    auth.login()
    write_post(client)
    with caplog.at_level(logging.INFO, logger="workers.jobs"):
        run_jobs()
    with app.app_context():
        job = f"job {tagging_job_id(the_post())} workers.tagging.auto_tag_post on default"
    lines = [r.getMessage() for r in caplog.records if r.name == "workers.jobs"]
    assert lines[0] == f"{job}: started"
    assert re.fullmatch(rf"{job}: finished in \d+\.\d{{3}}s", lines[1])


@pytest.mark.parametrize("state", [None, "pending", "failed", "done"])
def test_status_endpoint_reports_each_state(client, app, author_id, state):
    with app.app_context():
        post = factories.post(author_id, tags=["mine"])
        post.tagging_state = state
        db.session.commit()
        post_id = post.id
    assert client.get(f"/posts/{post_id}/tags.json").get_json()["state"] == state
    assert client.get("/posts/999/tags.json").status_code == 404


def test_the_author_is_told_how_long_saving_took(client, auth, app, author_id):
    auth.login()
    queued = client.get(write_post(client).headers["Location"]).get_data(as_text=True)
    assert "Saving took" in queued and "the tagger works in the background" in queued
    app.config["TAGGING_MODE"] = "inline"
    inline = client.get(write_post(client).headers["Location"]).get_data(as_text=True)
    assert "as the tagger ran inside the request" in inline


def test_an_unexpected_error_on_the_last_attempt_also_ends_failed(app_ctx, author_id, monkeypatch):
    post_id = factories.post(author_id).id

    def broken(self, title, body):
        raise ValueError("a bug, not an outage")

    monkeypatch.setattr(Tagger, "tags_for", broken)
    with pytest.raises(ValueError):
        auto_tag_post(post_id)
    assert db.session.get(Post, post_id).tagging_state == TaggingState.FAILED
