"""JOBS_MODE=fake records jobs for a test to look at; JOBS_MODE=inline runs them at once."""

import logging
from datetime import timedelta

import pytest
from rq import Retry
from sqlalchemy import select

from blog.extensions import db
from blog.models import TAGGER, Post, TaggingState
from blog.queues import enqueue, enqueue_after_commit, get_queue, redis_connection
from blog.tagger import Tagger, TaggerUnavailable
from tests import factories
from workers.demo import DemoFailure, demo
from workers.mailers import send_email, send_signup_reminder
from workers.tagging import TAGGING_RETRIES, auto_tag_post, schedule_tagging

POST = {"title": "Background jobs with Redis", "body": "Redis keeps the queue. Redis is fast."}


def the_post() -> Post:
    return db.session.scalars(select(Post)).one()


def test_fake_mode_records_the_job_and_sends_nothing_to_redis(
    client, auth, app, author_id, fake_jobs
):
    auth.login()
    client.post("/posts/new", data=POST)
    (job,) = fake_jobs.jobs
    with app.app_context():
        post_id = the_post().id
        assert redis_connection().keys("rq:*") == []
    assert (job.queue, job.func, job.args) == ("default", auto_tag_post, (post_id,))
    assert job.id == f"tag-post-{post_id}-v1"
    assert job.options["retry"].max == TAGGING_RETRIES


def test_fake_mode_records_delays_and_jobs_per_queue(auth, app, fake_jobs):
    auth.signup("new@example.com")
    assert [job.func for job in fake_jobs.on("mailers")] == [send_email, send_signup_reminder]
    (reminder,) = fake_jobs.of(send_signup_reminder)
    assert reminder.delay == timedelta(seconds=app.config["SIGNUP_REMINDER_DELAY"])


def test_fake_mode_keeps_nothing_of_a_rolled_back_transaction(app_ctx, author_id, fake_jobs):
    factories.post(author_id).title = "changed"
    enqueue_after_commit(demo, 0, "never")
    db.session.rollback()
    assert fake_jobs.jobs == []


def test_draining_the_fake_jobs_runs_them(client, auth, app, author_id, fake_jobs):
    auth.login()
    client.post("/posts/new", data=POST)
    (ran,) = fake_jobs.drain()
    assert "redis" in ran.result
    assert fake_jobs.jobs == []
    with app.app_context():
        assert the_post().tagging_state == TaggingState.DONE


def test_inline_mode_runs_the_job_right_after_the_commit(client, auth, app, author_id, inline_jobs):
    auth.login()
    assert client.post("/posts/new", data=POST).status_code == 302
    with app.app_context():
        post = the_post()
        assert post.tagging_state == TaggingState.DONE
        assert "redis" in post.tag_names(TAGGER)
        assert get_queue("default").count == 0


def test_inline_mode_retries_at_once(client, auth, app, author_id, inline_jobs, monkeypatch):
    calls = []
    real_tags_for = Tagger.tags_for

    def flaky(self, title, body):
        calls.append(title)
        if len(calls) <= TAGGING_RETRIES:
            raise TaggerUnavailable("timed out")
        return real_tags_for(self, title, body)

    monkeypatch.setattr(Tagger, "tags_for", flaky)
    auth.login()
    client.post("/posts/new", data=POST)
    assert len(calls) == TAGGING_RETRIES + 1
    with app.app_context():
        assert the_post().tagging_state == TaggingState.DONE


def test_inline_mode_after_the_last_retry_logs_and_keeps_the_request(
    client, auth, app, author_id, inline_jobs, caplog
):
    app.config["TAGGER_FAILURE_RATE"] = 1
    auth.login()
    with caplog.at_level(logging.ERROR, logger="blog.queues"):
        assert client.post("/posts/new", data=POST).status_code == 302
    with app.app_context():
        assert (
            the_post().tagging_state == TaggingState.FAILED
        )  # the last attempt, and only it, said so
    assert "could not enqueue auto_tag_post" in caplog.text
    assert "TaggerUnavailable" in caplog.text


def test_inline_mode_marks_failed_only_on_the_last_attempt(
    app_ctx, author_id, inline_jobs, monkeypatch
):
    post_id = factories.post(author_id).id
    states = []

    def broken(self, title, body):
        states.append(db.session.get(Post, post_id).tagging_state)
        raise TaggerUnavailable("down")

    monkeypatch.setattr(Tagger, "tags_for", broken)
    db.session.get(Post, post_id).tagging_state = TaggingState.PENDING
    db.session.commit()
    with pytest.raises(TaggerUnavailable):
        enqueue(auto_tag_post, post_id, retry=Retry(max=2))
    assert states == [TaggingState.PENDING, TaggingState.PENDING, TaggingState.PENDING]
    db.session.expire_all()
    assert db.session.get(Post, post_id).tagging_state == TaggingState.FAILED


def test_enqueue_in_inline_mode_returns_the_result_or_raises(app_ctx, inline_jobs):
    assert enqueue(demo, 0, "here").result == "here"
    with pytest.raises(DemoFailure):
        enqueue(demo, 0, "there", 1.0)


def test_scheduling_a_new_row_flushes_it_for_its_id(app_ctx, author_id, fake_jobs):
    post = Post(author_id=author_id, title="New", body="Not flushed yet.")
    db.session.add(post)
    schedule_tagging(post)
    assert post.id is not None
    assert fake_jobs.jobs == []  # it waits for the commit
    db.session.commit()
    assert [job.args for job in fake_jobs.of(auto_tag_post)] == [(post.id,)]
