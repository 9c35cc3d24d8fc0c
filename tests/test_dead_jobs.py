"""The dead-job cap: failed jobs kept at most DEAD_JOBS_MAX, for at most DEAD_JOBS_MAX_AGE days."""

import time
from datetime import UTC, datetime, timedelta

import pytest
from rq.job import Job

from blog import dead_jobs
from blog.queues import enqueue, get_queue
from tests.jobs import fail_with
from workers.maintenance import trim_dead_jobs

DAY = 24 * 3600


@pytest.fixture
def as_admin(auth, admin_id):
    auth.login("root@example.com")


def failed_jobs(app, run_jobs, count: int, queue: str = "default", **options) -> list[str]:
    """``count`` jobs failed on ``queue``, enqueued straight on RQ's queue with ``options``."""
    with app.app_context():
        ids = [
            get_queue(queue).enqueue(fail_with, f"failure {n}", **options).id for n in range(count)
        ]
    run_jobs()
    return ids


def failed_days_ago(app, queue: str, job_id: str, days: float) -> None:
    """Make RQ's records say the job failed ``days`` ago: its failed registry entry is scored
    by when it failed plus its failure_ttl."""
    with app.app_context():
        job = Job.fetch(job_id, connection=app.extensions["redis"])
        ttl = job.failure_ttl or 365 * DAY
        registry = get_queue(queue).failed_job_registry
        registry.connection.zadd(registry.key, {job_id: time.time() - days * DAY + ttl}, xx=True)


def still_failed(app, queue: str = "default") -> set[str]:
    with app.app_context():
        return set(get_queue(queue).failed_job_registry.get_job_ids())


def test_a_job_enqueued_by_the_app_is_kept_failed_for_the_max_age_not_a_year(app, run_jobs):
    app.config["DEAD_JOBS_MAX_AGE"] = 30
    with app.app_context():
        job = enqueue(fail_with, "boom")
    run_jobs()
    with app.app_context():
        registry = get_queue("default").failed_job_registry
        expires = registry.get_expiration_time(job)
        assert job.id in registry
    assert abs((expires - datetime.now(UTC)) - timedelta(days=30)) < timedelta(minutes=1)
    ttl = app.extensions["redis"].ttl(Job.key_for(job.id))
    assert 29 * DAY < ttl <= 30 * DAY


def test_the_cap_removes_the_oldest_beyond_the_count_of_every_queue(app, run_jobs):
    app.config["DEAD_JOBS_MAX"] = 3
    default = failed_jobs(app, run_jobs, 3)
    low = failed_jobs(app, run_jobs, 2, queue="low")
    for days, (queue, job_id) in zip(
        (5, 1, 4, 3, 2), [("default", i) for i in default] + [("low", i) for i in low], strict=True
    ):
        failed_days_ago(app, queue, job_id, days)
    with app.app_context():
        assert trim_dead_jobs() == {"by_age": 0, "by_count": 2}
    # The two oldest went, 5 and 4 days old, and every record of theirs with them.
    assert still_failed(app) == {default[1]}
    assert still_failed(app, "low") == set(low)
    connection = app.extensions["redis"]
    assert not connection.exists(Job.key_for(default[0]), Job.key_for(default[2]))
    with app.app_context():
        assert trim_dead_jobs() == {"by_age": 0, "by_count": 0}


def test_the_cap_removes_the_jobs_older_than_the_max_age_whatever_their_ttl(app, run_jobs):
    app.config["DEAD_JOBS_MAX_AGE"] = 180
    old, recent = failed_jobs(app, run_jobs, 2)  # with RQ's own failure_ttl: a year
    failed_days_ago(app, "default", old, 200)
    failed_days_ago(app, "default", recent, 100)
    with app.app_context():
        assert trim_dead_jobs() == {"by_age": 1, "by_count": 0}
    assert still_failed(app) == {recent}
    assert not app.extensions["redis"].exists(Job.key_for(old))


def test_the_cap_trims_in_batches(app, run_jobs, monkeypatch):
    monkeypatch.setattr(dead_jobs, "BATCH", 2)
    app.config["DEAD_JOBS_MAX"] = 2
    ids = failed_jobs(app, run_jobs, 7)
    for days, job_id in enumerate(ids):
        failed_days_ago(app, "default", job_id, 10 - days)
    failed_days_ago(app, "default", ids[3], 200)  # and one too old, among the others
    with app.app_context():
        assert trim_dead_jobs() == {"by_age": 1, "by_count": 4}
    assert still_failed(app) == set(ids[-2:])


def test_what_the_cap_removed_is_on_the_stats_page_and_in_flask_jobs_stats(
    app, run_jobs, client, as_admin, runner
):
    assert "dead-job cap" not in client.get("/admin/stats").text
    app.config["DEAD_JOBS_MAX"] = 1
    failed_jobs(app, run_jobs, 3)
    with app.app_context():
        trim_dead_jobs()
        last = dead_jobs.last_trim(app.extensions["redis"])
    assert (last.by_count, last.by_age, last.total) == (2, 0, 2)
    assert datetime.now(UTC) - last.at < timedelta(minutes=1)
    said = (
        "The dead-job cap last removed 2 failed job(s) (2 beyond the count) "
        f"at {last.at:%Y-%m-%d %H:%M} UTC; 2 in all."
    )
    assert said in client.get("/admin/stats").text
    assert said in runner.invoke(args=["jobs", "stats"]).output
