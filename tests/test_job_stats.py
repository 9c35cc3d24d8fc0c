"""The job counters: written by the worker as each job ends, read by the stats page."""

from datetime import UTC, datetime, timedelta

import pytest

from blog import job_stats
from blog.queues import backoff, enqueue
from workers.demo import demo


def totals(app) -> dict:
    return job_stats.totals(app.extensions["redis"])


def test_counts_go_to_the_minute_they_happened_in(app):
    connection = app.extensions["redis"]
    now = datetime(2026, 11, 23, 18, 30, 40, tzinfo=UTC)
    job_stats.record_job(connection, failed=False, at=now - timedelta(minutes=2))
    job_stats.record_job(connection, failed=True, at=now)
    job_stats.record_job(connection, failed=False, at=now - timedelta(hours=3))  # off the chart

    assert job_stats.totals(connection) == {"processed": 3, "failed": 1}
    minutes = job_stats.last_hour(connection, now=now)
    assert len(minutes) == 60
    assert minutes[0].start == datetime(2026, 11, 23, 17, 31, tzinfo=UTC)
    assert (minutes[-1].start, minutes[-1].processed, minutes[-1].failed) == (
        datetime(2026, 11, 23, 18, 30, tzinfo=UTC),
        1,
        1,
    )
    assert (minutes[-3].processed, minutes[-3].failed) == (1, 0)
    assert sum(m.processed for m in minutes) == 2


def test_a_minutes_counts_expire_and_the_totals_do_not(app):
    connection = app.extensions["redis"]
    job_stats.record_job(connection, failed=True)
    minute_keys = connection.keys("blog:jobs:*:*")
    assert len(minute_keys) == 2
    assert all(0 < connection.ttl(key) <= 2 * 3600 for key in minute_keys)
    assert connection.ttl("blog:jobs:processed") == -1


def test_the_in_process_worker_counts_every_run_and_failure(app, run_jobs):
    with app.app_context():
        enqueue(demo, 0, "fine")
        enqueue(demo, 0, "fine")
        enqueue(demo, 0, "broken", 1.0)
    run_jobs()
    assert totals(app) == {"processed": 3, "failed": 1}


def test_each_failed_attempt_of_a_retried_job_counts(app, run_jobs):
    with app.app_context():
        enqueue(demo, 0, "broken", 1.0, retry=backoff(2))  # waits of 0 s in tests
    run_jobs()
    assert totals(app) == {"processed": 3, "failed": 3}


@pytest.mark.integration
def test_the_forking_worker_counts_in_redis(app, live_redis, rq_worker):
    with app.app_context():
        enqueue(demo, 0, "fine")
        enqueue(demo, 0, "broken", 1.0)
    rq_worker()
    assert job_stats.totals(live_redis) == {"processed": 2, "failed": 1}
    assert sum(m.processed for m in job_stats.last_hour(live_redis)) == 2
