"""The recurring jobs: requeue_stranded_work and refresh_stats."""

from datetime import timedelta

from blog import job_stats
from blog.extensions import db
from blog.models import DONE, PENDING, Post, utcnow
from blog.queues import get_queue, redis_connection
from tests import factories
from workers.maintenance import refresh_stats, requeue_stranded_work
from workers.tagging import schedule_tagging


def pending_post(author_id: int, minutes_ago: float) -> Post:
    post = factories.post(author_id)
    post.mark_tagging(PENDING)
    post.tagging_changed_at = utcnow() - timedelta(minutes=minutes_ago)
    db.session.commit()
    return post


def test_stranded_posts_are_enqueued_again(app_ctx, ada):
    stranded = pending_post(ada, minutes_ago=10)
    pending_post(ada, minutes_ago=1)  # still within STRANDED_AFTER_SECONDS: leave it
    assert requeue_stranded_work() == {"posts": [stranded.id], "emails": []}
    assert get_queue("default").job_ids == [f"tag-post-{stranded.id}-v1"]
    # Its clock restarts, so the next run does not enqueue it again.
    assert requeue_stranded_work() == {"posts": [], "emails": []}


def test_a_post_whose_job_is_still_queued_is_left_alone(app_ctx, ada):
    post = factories.post(ada)
    db.session.flush()
    schedule_tagging(post)
    db.session.commit()
    post.tagging_changed_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    assert requeue_stranded_work() == {"posts": [], "emails": []}
    assert get_queue("default").count == 1


def test_stranded_work_is_tagged_once_requeued(app_ctx, ada, run_jobs):
    post = pending_post(ada, minutes_ago=10)
    requeue_stranded_work()
    run_jobs()
    db.session.expire_all()
    assert db.session.get(Post, post.id).tagging_state == DONE


def test_refresh_stats_caches_the_blog_figures(app_ctx, ada, grace):
    assert job_stats.cached_blog_stats(redis_connection()) is None
    factories.post(ada, body="one two three", tags=["redis", "rq"])
    factories.post(grace, body="four five", tags=["redis"])
    refresh_stats()
    stats = job_stats.cached_blog_stats(redis_connection())
    assert stats["users"] == 2
    assert stats["posts"] == 2
    assert stats["words"] == 5
    assert stats["tags"] == 2
    assert stats["top_tags"] == [{"name": "redis", "posts": 2}, {"name": "rq", "posts": 1}]
    assert stats["computed_at"]


def test_before_the_first_migration_the_recurring_jobs_skip_and_do_not_fail(
    app, live_redis, rq_worker, caplog
):
    """A first deploy: the clock's jobs reach the worker before the web process migrated."""
    with app.app_context():
        db.drop_all()
        for job in (requeue_stranded_work, refresh_stats):
            assert job() is None
            queued = get_queue("low").enqueue(job)
    assert "skipped: the database is not migrated yet" in caplog.text

    worker = rq_worker()
    assert "workers.maintenance.refresh_stats on low: finished" in worker.stdout + worker.stderr
    with app.app_context():
        assert queued.get_status(refresh=True) == "finished"
        assert get_queue("low").failed_job_registry.count == 0
        db.create_all()  # for the fixture's clean-up
