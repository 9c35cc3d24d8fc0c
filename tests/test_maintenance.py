"""The recurring jobs: requeue_stranded_work and refresh_stats."""

from collections import Counter
from datetime import timedelta

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from rq.job import Job
from sqlalchemy import event, select

from blog import job_stats, queues
from blog.auth.views import create_account
from blog.extensions import db
from blog.models import AUTHOR, TAGGER, Post, Tag, TaggingState, User, utcnow
from blog.queues import get_queue, redis_connection
from blog.tagger import Tagger, TaggerUnavailable, extract_tags
from devtools.redis_round_trips import counting_round_trips
from tests import factories
from workers.maintenance import refresh_stats, requeue_stranded_work
from workers.tagging import auto_tag_post, schedule_tagging

NOTHING = {"posts": [], "emails": [], "reminders": []}


def pending_post(author_id: int, minutes_ago: float) -> Post:
    post = factories.post(author_id)
    post.mark_tagging(TaggingState.PENDING)
    post.tagging_changed_at = utcnow() - timedelta(minutes=minutes_ago)
    db.session.commit()
    return post


def test_stranded_posts_are_enqueued_again(app_ctx, author_id):
    stranded = pending_post(author_id, minutes_ago=10)
    pending_post(author_id, minutes_ago=1)  # still within STRANDED_AFTER_SECONDS: leave it
    assert requeue_stranded_work() == {**NOTHING, "posts": [stranded.id]}
    assert get_queue("default").job_ids == [f"tag-post-{stranded.id}-v1"]
    # Its clock restarts, so the next run does not enqueue it again.
    assert requeue_stranded_work() == NOTHING


def test_a_post_whose_job_is_still_queued_is_left_alone(app_ctx, author_id):
    post = factories.post(author_id)
    db.session.flush()
    schedule_tagging(post)
    db.session.commit()
    post.tagging_changed_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    assert requeue_stranded_work() == NOTHING
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


def sign_up(count: int) -> list[User]:
    """``count`` users signed up as the site signs them up: each with a welcome email waiting
    for its job and a reminder scheduled."""
    addresses = [f"reader{next(factories._serial)}@example.com" for _ in range(count)]
    for address in addresses:
        create_account(address, factories.PASSWORD)
    return db.session.scalars(select(User).where(User.email.in_(addresses))).all()


def test_the_sweep_costs_three_round_trips_however_much_work_is_in_flight(app, app_ctx):
    app.config["STRANDED_AFTER_SECONDS"] = 0  # everything counts as old enough to look at
    round_trips = []
    for count in (1, 40):
        for user in sign_up(count):
            schedule_tagging(factories.post(user.id))
            db.session.commit()
        # As on a first run, every signup of the day is looked at, not only the new ones.
        redis_connection().delete(job_stats.REMINDERS_CHECKED_KEY)
        with counting_round_trips() as trips:
            assert requeue_stranded_work() == NOTHING
        round_trips.append(trips.count)
    assert round_trips == [3, 3]  # how far it checked; every job at once; how far it checked


def test_each_sweep_looks_up_the_reminders_of_the_new_signups_only(app, app_ctx, monkeypatch):
    app.config["STRANDED_AFTER_SECONDS"] = 0
    sign_up(3)
    assert requeue_stranded_work() == NOTHING
    (newcomer,) = sign_up(1)
    looked_up = []
    fetch_many = Job.fetch_many

    def recording(job_ids, connection, serializer=None):
        looked_up.extend(job_ids)
        return fetch_many(job_ids, connection=connection, serializer=serializer)

    monkeypatch.setattr(Job, "fetch_many", recording)
    assert requeue_stranded_work() == NOTHING
    reminders = [job_id for job_id in looked_up if job_id.startswith("signup-reminder-")]
    assert reminders == [f"signup-reminder-{newcomer.id}"]


def test_a_reminder_lost_with_redis_data_after_its_check_is_scheduled_again(app, app_ctx):
    app.config["STRANDED_AFTER_SECONDS"] = 0
    (user,) = sign_up(1)
    assert requeue_stranded_work() == NOTHING  # its reminder is in flight
    redis_connection().flushdb()  # Redis lost its data: the reminder, and the sweep's mark
    assert requeue_stranded_work()["reminders"] == [user.id]
    registry = get_queue("mailers").scheduled_job_registry
    due = registry.get_scheduled_time(f"signup-reminder-{user.id}")
    expected = user.created_at + timedelta(seconds=app.config["SIGNUP_REMINDER_DELAY"])
    assert abs((due - expected).total_seconds()) < 1
    assert requeue_stranded_work() == NOTHING


def test_a_reminder_that_could_not_be_scheduled_again_is_tried_again(app, app_ctx, monkeypatch):
    app.config["STRANDED_AFTER_SECONDS"] = 0
    user = factories.user()  # signed up while Redis was down: no reminder
    enqueue = queues.JobRequest.enqueue

    def redis_down(request):
        raise RedisConnectionError("Redis is down")

    monkeypatch.setattr(queues.JobRequest, "enqueue", redis_down)
    assert requeue_stranded_work()["reminders"] == [user.id]  # tried; the failure is logged
    monkeypatch.setattr(queues.JobRequest, "enqueue", enqueue)
    assert requeue_stranded_work()["reminders"] == [user.id]
    assert requeue_stranded_work() == NOTHING


def test_a_half_written_job_record_is_no_job_in_flight(app_ctx, author_id):
    queued = factories.post(author_id)
    schedule_tagging(queued)
    db.session.commit()
    queued.tagging_changed_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    half_written = pending_post(author_id, minutes_ago=10)
    # What a worker killed while writing the job's record can leave: a status, no job.
    redis_connection().hset(Job.key_for(f"tag-post-{half_written.id}-v1"), "status", "started")
    assert requeue_stranded_work() == {**NOTHING, "posts": [half_written.id]}
    assert sorted(get_queue("default").job_ids) == sorted(
        [f"tag-post-{queued.id}-v1", f"tag-post-{half_written.id}-v1"]
    )


def counted_row_by_row() -> dict:
    """The figures as refresh_stats once worked them out: from every row, in Python."""
    db.session.expire_all()
    posts = db.session.scalars(select(Post)).all()
    links = Counter(link.tag.name for post in posts for link in post.tag_links)
    top_tags = sorted(links.items(), key=lambda item: (-item[1], item[0]))[:10]
    return {
        "users": len(db.session.scalars(select(User)).all()),
        "posts": len(posts),
        "words": sum(len(post.body.split()) for post in posts),
        "tags": len(db.session.scalars(select(Tag)).all()),
        "top_tags": [{"name": name, "posts": count} for name, count in top_tags],
        "tagging": dict(Counter(str(post.tagging_state) for post in posts)),
    }


def figures() -> dict:
    stats = refresh_stats()
    del stats["computed_at"]
    return stats


def test_the_figures_are_those_of_every_row_whatever_changes(app_ctx, author_id, other_user_id):
    states = [None, TaggingState.PENDING, TaggingState.DONE, TaggingState.FAILED]
    posts = []
    for n in range(14):
        tags = [f"tag{k}" for k in range(n % 12)]  # more than ten tags, with ties
        posts.append(factories.post(author_id, body=f"word {'more ' * n}", tags=tags))
        if states[n % 4]:
            posts[-1].mark_tagging(states[n % 4])
        db.session.commit()
    factories.post(other_user_id, body="", tags=["zebra"])  # no words
    assert figures() == counted_row_by_row()

    edited, tagged, deleted = posts[3], posts[5], posts[11]
    edited.edit("Edited", "four\tfive\u00a0six\nseven  ")  # any white space separates words
    edited.set_tags(["tag1", "new"], AUTHOR)
    schedule_tagging(edited)
    db.session.commit()
    auto_tag_post(tagged.id)  # the tagger's tags and state, written by the job's own statements
    db.session.delete(deleted)  # its tag links go with it, by the database's cascade
    db.session.commit()
    create_account("newcomer@example.com", factories.PASSWORD)
    assert figures() == counted_row_by_row()
    assert figures() == counted_row_by_row()  # and nothing is added twice


def test_refresh_stats_reads_no_post_body(app_ctx, author_id):
    factories.post(author_id, body="one two three")
    statements = []

    def record(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        refresh_stats()
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert statements
    assert not [statement for statement in statements if "body" in statement]


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
