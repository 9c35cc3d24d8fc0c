"""The job metrics: recorded per function by the worker as each job ends, read back by window."""

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from rq.job import JobStatus

from blog import config, job_metrics
from blog.job_metrics import Counts, bucket
from blog.queues import backoff, enqueue
from tests import jobs
from tests.dynos import wait_for
from workers.demo import demo

DEMO = "workers.demo.demo"
NOOP = "tests.jobs.noop"


def last_hour(connection, function: str, queue: str = "default") -> Counts:
    return job_metrics.windows(job_metrics.minutes(connection, queue, function, 60))["1h"]


def test_a_time_falls_in_the_first_bucket_whose_bound_it_does_not_exceed():
    assert bucket(0) == 0
    assert bucket(0.001) == 0
    assert bucket(0.0011) == 1
    assert bucket(0.3) == job_metrics.BOUNDS.index(0.5)
    assert bucket(2500) == len(job_metrics.BOUNDS) - 1
    assert bucket(3600) == len(job_metrics.BOUNDS)  # the last bucket has no bound


def test_percentiles_interpolate_within_a_bucket():
    buckets = [0] * job_metrics.BUCKETS
    buckets[bucket(0.2)] = 90  # (0.1, 0.25]
    buckets[bucket(0.7)] = 10  # (0.5, 1]
    assert job_metrics.percentile(buckets, 0.5) == pytest.approx(0.1 + 0.15 * 50 / 90)
    assert job_metrics.percentile(buckets, 0.95) == pytest.approx(0.5 + 0.5 * 5 / 10)
    assert job_metrics.percentile([0] * job_metrics.BUCKETS, 0.5) is None
    buckets[-1] = 1000
    assert job_metrics.percentile(buckets, 0.99) == job_metrics.BOUNDS[-1]


def test_executions_add_up_by_minute_and_window(app):
    connection = app.extensions["redis"]
    now = datetime(2026, 11, 23, 18, 30, 40, tzinfo=UTC)
    for minutes_ago, failed, duration, wait in [
        (0, False, 0.02, 0.5),
        (0, True, 3.0, None),  # a wait that is not known
        (30, False, 0.04, 1.5),
        (5 * 60, False, 0.2, 0.1),  # in the 8 hours, not the hour
        (71 * 60, False, 60.0, 0.0),
        (73 * 60, False, 60.0, 0.0),  # older than the 72 hours
    ]:
        with connection.pipeline() as pipe:
            at = now - timedelta(minutes=minutes_ago)
            job_metrics.add_execution(pipe, "app.f", "default", failed, duration, wait, at)
            pipe.execute()

    records = job_metrics.minutes(connection, "default", "app.f", 72 * 60, now=now)
    assert records[-1][0] == datetime(2026, 11, 23, 18, 30, tzinfo=UTC)
    assert (records[-1][1].executions, records[-1][1].failures) == (2, 1)
    windows = job_metrics.windows(records)
    hour = windows["1h"]
    assert (hour.executions, hour.failures, hour.waits) == (3, 1, 2)
    assert hour.time_total == pytest.approx(3.06)
    assert hour.average_wait == pytest.approx(1.0)
    assert hour.failure_rate == pytest.approx(1 / 3)
    assert hour.time_buckets[bucket(0.02)] == 1
    assert hour.time_buckets[bucket(3.0)] == 1
    assert hour.wait_buckets[bucket(1.5)] == 1
    assert [windows[w].executions for w in ("8h", "24h", "72h")] == [4, 4, 5]
    all_time = job_metrics.all_time(connection, "default", "app.f")
    assert all_time["finished"].executions == 5
    assert (all_time["failed"].executions, all_time["failed"].failures) == (1, 1)


def test_a_minutes_record_expires_after_72_hours(app):
    connection = app.extensions["redis"]
    with connection.pipeline() as pipe:
        job_metrics.add_execution(pipe, "app.f", "default", False, 0.01, 0.01)
        pipe.execute()
    (minute,) = connection.keys("blog:metrics:minute:*")
    assert 71 * 3600 < connection.ttl(minute) <= 72 * 3600
    assert all(connection.ttl(key) == -1 for key in connection.keys("blog:metrics:all:*"))
    assert len(connection.get(minute)) <= job_metrics.MINUTE_RECORD_BYTES


@pytest.fixture
def release(monkeypatch):
    """Set the release the worker runs, as a platform would."""

    def set_release(name: str) -> None:
        monkeypatch.setenv("RELEASE", name)
        job_metrics.this_release.cache_clear()

    yield set_release
    job_metrics.this_release.cache_clear()


def test_a_release_is_the_platforms_id_or_the_git_commit():
    assert config.release({"RELEASE": "r1", "HEROKU_SLUG_COMMIT": "abc"}) == "abc"
    assert config.release({"RELEASE": "r1", "HEROKU_RELEASE_VERSION": "v9"}) == "v9"
    assert config.release({"RELEASE": "r1"}) == "r1"
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True).stdout
    assert head.startswith(config.release({}))


def test_the_first_job_of_each_release_marks_when_it_came_out(app, run_jobs, release):
    connection = app.extensions["redis"]
    before = datetime.now(UTC)
    release("v7")
    with app.app_context():
        enqueue(demo, 0, "first")
        enqueue(demo, 0, "second")
    run_jobs()
    (v7,) = job_metrics.releases(connection, since=before)
    release("v8")
    with app.app_context():
        enqueue(demo, 0, "after the deploy")
    run_jobs()

    assert [name for name, _ in job_metrics.releases(connection, since=before)] == ["v7", "v8"]
    assert job_metrics.releases(connection, since=before)[0] == v7  # not moved by later jobs


def test_the_worker_records_each_function_apart(app, run_jobs):
    with app.app_context():
        enqueue(demo, 0, "fine")
        enqueue(demo, 0.3, "slow")
        enqueue(demo, 0, "broken", 1.0)
        enqueue(jobs.noop, queue="low")
    run_jobs()

    connection = app.extensions["redis"]
    names = [(f.queue, f.name) for f in job_metrics.functions(connection)]
    assert names == [("low", NOOP), ("default", DEMO)]
    demo_counts = last_hour(connection, DEMO)
    assert (demo_counts.executions, demo_counts.failures, demo_counts.waits) == (3, 1, 3)
    assert sum(demo_counts.time_buckets[bucket(0.3) :]) == 1  # the slow one
    assert demo_counts.time_total >= 0.3
    assert sum(demo_counts.wait_buckets) == 3
    assert last_hour(connection, NOOP, "low").executions == 1


def test_each_attempt_of_a_retried_job_is_an_execution(app, run_jobs):
    with app.app_context():
        enqueue(demo, 0, "broken", 1.0, retry=backoff(2))  # retried at once in tests
    run_jobs()
    counts = last_hour(app.extensions["redis"], DEMO)
    assert (counts.executions, counts.failures) == (3, 3)
    # A retry without a delay overwrites the enqueue time as the attempt before it ends: only
    # the last attempt's wait is known in a worker that runs jobs in its own process.
    assert counts.waits == 1


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_the_procfile_worker_records_successes_failures_and_retries(
    app, live_redis, rq_worker, mode
):
    with app.app_context():
        enqueue(demo, 0, "fine")
        enqueue(demo, 0.3, "slow")
        enqueue(demo, 0, "broken", 1.0, retry=backoff(1))
    rq_worker(env={"WORKER_MODE": mode})

    counts = last_hour(live_redis, DEMO)
    assert (counts.executions, counts.failures) == (4, 2)
    assert sum(counts.time_buckets) == 4
    assert sum(counts.time_buckets[bucket(0.3) :]) == 1
    # A work-horse retries its job in its own copy, so the worker still sees the first
    # attempt's enqueue time; a thread's has been overwritten by the retry.
    assert counts.waits == (4 if mode == "fork" else 3)
    assert sum(counts.wait_buckets) == counts.waits
    all_time = job_metrics.all_time(live_redis, "default", DEMO)
    assert (all_time["finished"].executions, all_time["failed"].executions) == (2, 2)


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_a_timed_out_job_is_a_failure_as_long_as_its_timeout(
    app, live_redis, rq_worker_process, mode
):
    with app.app_context():
        job = enqueue(demo, 60, "too long", job_timeout=1)
    rq_worker_process(env={"WORKER_MODE": mode})
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FAILED, 30, "the job to time out")
    wait_for(lambda: last_hour(live_redis, DEMO).executions, 10, "its metrics")

    counts = last_hour(live_redis, DEMO)
    assert (counts.executions, counts.failures) == (1, 1)
    assert 1.0 <= counts.time_total < 5
    assert counts.time_buckets[bucket(counts.time_total)] == 1


@pytest.mark.integration
def test_a_scheduled_jobs_wait_counts_from_its_due_time(app, live_redis, rq_worker_process):
    rq_worker_process()
    with app.app_context():
        job = enqueue(demo, 0, "later", delay=timedelta(seconds=2))
    wait_for(lambda: job.get_status(refresh=True) == JobStatus.FINISHED, 30, "the job to run")
    wait_for(lambda: last_hour(live_redis, DEMO).executions, 10, "its metrics")

    counts = last_hour(live_redis, DEMO)
    assert counts.waits == 1
    assert counts.wait_total < 1.0  # not the 2 s it was scheduled for


@pytest.mark.integration
def test_a_minute_of_a_function_costs_at_most_what_the_readme_says(live_redis):
    with live_redis.pipeline() as pipe:
        # A failure in the highest buckets writes the longest record there is.
        job_metrics.add_execution(pipe, "workers.tagging.tag_post", "default", True, 5000, 5000)
        pipe.execute()
    (minute,) = live_redis.keys("blog:metrics:minute:*")
    assert live_redis.strlen(minute) == job_metrics.MINUTE_RECORD_BYTES
    assert live_redis.memory_usage(minute) <= 350
