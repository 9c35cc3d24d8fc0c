"""The clock (``python -m workers.clock``): ``rq cron`` on ``workers/cron.py``, as the Procfile
runs it, on its own: what it registers and enqueues, and how it stops."""

import json
import os

import pytest
from rq.cron import CronScheduler

from blog.queues import get_queue
from tests.dynos import BIN, Dyno, wait_for

pytestmark = pytest.mark.integration

RECURRING = {
    ("workers.maintenance.requeue_stranded_work", "low", 60),
    ("workers.maintenance.refresh_stats", "low", 60),
    ("workers.maintenance.trim_dead_jobs", "low", 60),
}


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_clock_enqueues_each_recurring_job_as_it_starts_and_stops_on_sigterm(
    app, live_redis, process_env, tmp_path, log_format
):
    env = {
        **process_env,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "LOG_FORMAT": log_format,
    }
    clock = Dyno("clock", env, tmp_path).start()
    try:
        (scheduler,) = wait_for(lambda: CronScheduler.all(live_redis), 30, "the clock")
        with app.app_context():
            queue = get_queue("low")
            jobs = wait_for(lambda: len(queue.jobs) == 3 and queue.jobs, 30, "its jobs")
    finally:
        clock.stop()
    assert clock.wait(timeout=30) == 0, clock.output()
    registered = {(job.func_name, job.queue_name, job.interval) for job in scheduler.get_jobs()}
    assert registered == RECURRING
    assert {(job.func_name, job.origin, 60) for job in jobs} == RECURRING
    assert {job.timeout for job in jobs} == {120}
    assert [job.meta["tags"] for job in jobs] == [["maintenance"]] * 3
    assert CronScheduler.all(live_redis) == []  # it said it was gone
    assert "Traceback" not in clock.output()
    if log_format == "json":  # rq cron's lines too
        lines = [json.loads(line) for line in clock.output().splitlines()]
        assert any(line["logger"] == "rq.cron" and line["level"] == "INFO" for line in lines)
