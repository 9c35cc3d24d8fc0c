"""The recurring jobs: requeue_stranded_work and refresh_stats."""

from datetime import timedelta

import pytest

from blog import job_stats
from blog.extensions import db
from blog.models import TAGGER, Post, TaggingState, utcnow
from blog.queues import get_queue, redis_connection
from blog.tagger import Tagger, TaggerUnavailable, extract_tags
from tests import factories
from workers.maintenance import refresh_stats, requeue_stranded_work
from workers.tagging import auto_tag_post, schedule_tagging


def pending_post(author_id: int, minutes_ago: float) -> Post:
    post = factories.post(author_id)
    post.mark_tagging(TaggingState.PENDING)
    post.tagging_changed_at = utcnow() - timedelta(minutes=minutes_ago)
    db.session.commit()
    return post


def test_stranded_posts_are_enqueued_again(app_ctx, author_id):
    stranded = pending_post(author_id, minutes_ago=10)
    pending_post(author_id, minutes_ago=1)  # still within STRANDED_AFTER_SECONDS: leave it
    assert requeue_stranded_work() == {"posts": [stranded.id], "emails": [], "reminders": []}
    assert get_queue("default").job_ids == [f"tag-post-{stranded.id}-v1"]
    # Its clock restarts, so the next run does not enqueue it again.
    assert requeue_stranded_work() == {"posts": [], "emails": [], "reminders": []}


def test_a_post_whose_job_is_still_queued_is_left_alone(app_ctx, author_id):
    post = factories.post(author_id)
    db.session.flush()
    schedule_tagging(post)
    db.session.commit()
    post.tagging_changed_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    assert requeue_stranded_work() == {"posts": [], "emails": [], "reminders": []}
    assert get_queue("default").count == 1


def test_stranded_work_is_tagged_once_requeued(app_ctx, author_id, run_jobs):
    post = pending_post(author_id, minutes_ago=10)
    requeue_stranded_work()
    run_jobs()
    db.session.expire_all()
    assert db.session.get(Post, post.id).tagging_state == TaggingState.DONE


def test_refresh_stats_caches_the_blog_figures(app_ctx, author_id, other_user_id):
    assert job_stats.cached_blog_stats(redis_connection()) is None
    factories.post(author_id, body="one two three", tags=["redis", "rq"])
    factories.post(other_user_id, body="four five", tags=["redis"])
    refresh_stats()
    stats = job_stats.cached_blog_stats(redis_connection())
    assert stats["users"] == 2
    assert stats["posts"] == 2
    assert stats["words"] == 5
    assert stats["tags"] == 2
    assert stats["top_tags"] == [{"name": "redis", "posts": 2}, {"name": "rq", "posts": 1}]
    assert stats["computed_at"]


def test_a_late_original_job_and_the_sweepers_copy_leave_the_tags_of_the_newest_version(
    app_ctx, author_id, run_jobs
):
    post = pending_post(author_id, minutes_ago=10)  # its job seems lost...
    post.edit("All about Postgres", "Postgres Postgres")  # ...and the author edits it meanwhile
    db.session.commit()
    requeue_stranded_work()  # enqueues tagging for the current version
    auto_tag_post(post.id)  # the original job turns up late, reads v2 too, and tags it
    run_jobs()  # then the sweeper's copy runs: the same tags again, nothing doubled
    db.session.expire_all()
    post = db.session.get(Post, post.id)
    assert post.tagging_state == TaggingState.DONE
    assert post.tag_names(TAGGER) == sorted(extract_tags("All about Postgres", "Postgres Postgres"))


def test_a_stale_jobs_last_failure_leaves_the_newer_versions_state_alone(
    app_ctx, author_id, monkeypatch
):
    post_id = factories.post(author_id, title="Old title").id

    def edited_meanwhile_then_down(self, title, body):
        post = db.session.get(Post, post_id)
        post.edit("New title", "new words")  # the edit enqueues a job for v2 ...
        schedule_tagging(post)
        db.session.commit()
        raise TaggerUnavailable("down")  # ... and the v1 job fails for good

    monkeypatch.setattr(Tagger, "tags_for", edited_meanwhile_then_down)
    with pytest.raises(TaggerUnavailable):
        auto_tag_post(post_id)
    db.session.expire_all()
    assert (
        db.session.get(Post, post_id).tagging_state == TaggingState.PENDING
    )  # v2's, not v1's failure


@pytest.mark.integration
def test_before_the_first_migration_the_recurring_jobs_skip_and_do_not_fail(
    app, live_redis, rq_worker, caplog
):
    """A first deploy: the clock's jobs reach the worker before the web process migrated."""
    with app.app_context():
        db.drop_all()
    try:
        with app.app_context():
            for job in (requeue_stranded_work, refresh_stats):
                assert job() is None
                queued = get_queue("low").enqueue(job)
        assert "skipped: the database is not migrated yet" in caplog.text

        worker = rq_worker()
        output = worker.stdout + worker.stderr
        assert "workers.maintenance.refresh_stats on low: finished" in output
        with app.app_context():
            assert queued.get_status(refresh=True) == "finished"
            assert get_queue("low").failed_job_registry.count == 0
    finally:
        with app.app_context():
            db.create_all()  # for the fixture's clean-up, whatever happened
