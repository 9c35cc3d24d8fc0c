"""Throttles: at most N job starts a period for a queue or a job function, across processes;
a job over the rate waits, and none fails for it."""

import itertools

import pytest
from rq.job import JobStatus

from blog import throttle
from blog.config import ConfigError, from_environment
from blog.queues import QUEUE_NAMES, enqueue, get_queue
from tests import jobs
from tests.dynos import wait_for

STARTS = "test:starts"


def test_the_throttles_come_from_the_environment(tmp_path):
    config = from_environment(
        tmp_path,
        {
            "APP_ENV": "testing",
            "MAIL_RATE_LIMIT": "10/second",
            "JOB_RATE_LIMITS": "low=600 per minute; workers.demo.demo = 2/second",
        },
    )
    assert {str(t) for t in config["JOB_RATE_LIMITS"].values()} == {
        "mailers=10/1s",
        "low=600/60s",
        "workers.demo.demo=2/1s",
    }
    assert from_environment(tmp_path, {"APP_ENV": "testing"})["JOB_RATE_LIMITS"] == {}


@pytest.mark.parametrize(
    ("variable", "value", "error"),
    [
        ("MAIL_RATE_LIMIT", "fast", "MAIL_RATE_LIMIT must be like 10/second: 'fast' is not a rate"),
        ("MAIL_RATE_LIMIT", "0/second", "'0/second' lets no job run: pause the queue instead"),
        ("JOB_RATE_LIMITS", "mailers", "'mailers' is not like mailers=10/second"),
        ("JOB_RATE_LIMITS", "mail=1/second", "'mail' is neither a queue (urgent, mailers"),
        ("JOB_RATE_LIMITS", "low=often", "'often' is not a rate like 10/second"),
    ],
)
def test_a_bad_throttle_stops_the_app_naming_it(tmp_path, variable, value, error):
    with pytest.raises(ConfigError) as raised:
        from_environment(tmp_path, {"APP_ENV": "testing", variable: value})
    assert error in str(raised.value)
    assert str(raised.value).startswith(variable)


def test_the_first_job_starts_and_the_next_ones_reserve_moments_evenly_spaced(app):
    connection = app.extensions["redis"]
    ten_a_second = throttle.Throttle("mailers", 10, 1.0)
    (first, now), *later = [throttle.ask(connection, ten_a_second) for _ in range(4)]
    assert first == now  # at once
    moments = [first] + [moment for moment, _ in later]
    assert [b - a for a, b in itertools.pairwise(moments)] == pytest.approx([0.1] * 3, abs=0.01)
    # A job back at its moment, too early, waits for the spacing without reserving again.
    moment, now = throttle.ask(connection, ten_a_second, reserved=True)
    assert moment == pytest.approx(first + 0.1, abs=0.01) and moment > now


def test_a_function_throttle_wins_over_its_queues():
    throttles = throttle.parse_throttles("low=1/second; workers.demo.demo=5/second", QUEUE_NAMES)
    assert throttle.throttle_for(throttles, "workers.demo.demo", "low").count == 5
    assert throttle.throttle_for(throttles, "workers.demo.other", "low").count == 1
    assert throttle.throttle_for(throttles, "workers.demo.demo", "default").count == 5
    assert throttle.throttle_for(throttles, "tests.jobs.noop", "default") is None


def start_times(connection) -> list[float]:
    return sorted(float(entry.split()[1]) for entry in connection.lrange(STARTS, 0, -1))


@pytest.mark.integration
def test_jobs_over_the_rate_run_no_faster_than_it_and_none_fails(
    app, live_redis, rq_worker_process
):
    """Twelve jobs at five a second, on two processes of two threads each: they start a fifth
    of a second apart at least, and all finish."""
    worker = rq_worker_process(
        env={"MAIL_RATE_LIMIT": "5/second", "WORKER_CONCURRENCY": "4", "WORKER_PROCESSES": "2"}
    )
    with app.app_context():
        queued = [enqueue(jobs.record_start, STARTS, queue="mailers") for _ in range(12)]

        def all_finished() -> bool:
            return all(job.get_status(refresh=True) == JobStatus.FINISHED for job in queued)

        wait_for(all_finished, 60, "the throttled jobs")
        assert get_queue("mailers").failed_job_registry.count == 0
    starts = start_times(live_redis)
    assert len(starts) == 12  # each ran once
    gaps = [later - earlier for earlier, later in itertools.pairwise(starts)]
    # Evenly spaced: the throttle spaces the moments the workers take the jobs; the function
    # starts after the worker's own round trips for it, a few hundredths of a second that vary.
    assert min(gaps) >= 0.2 - 0.05, gaps
    assert starts[-1] - starts[0] >= 11 * 0.2 - 0.05
    worker.terminate()
    assert worker.wait(timeout=30) == 0
