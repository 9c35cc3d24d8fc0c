"""Pausing a queue and quieting a worker, as Sidekiq users do before a deploy or an incident:
run for real, with ``python -m workers``."""

import signal
import time

import pytest
from rq.job import Job, JobStatus

from blog import queue_admin
from blog.queues import enqueue
from tests import jobs
from tests.dynos import wait_for

pytestmark = pytest.mark.integration

STARTS = "test:starts"


def status_of(job: Job) -> JobStatus:
    return job.get_status(refresh=True)


@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_a_paused_queue_keeps_its_jobs_until_resumed(app, live_redis, rq_worker_process, mode):
    worker = rq_worker_process(env={"WORKER_MODE": mode, "WORKER_CONCURRENCY": "2"})
    with app.app_context():
        warm_up = enqueue(jobs.record_start, STARTS)
        wait_for(lambda: status_of(warm_up) == JobStatus.FINISHED, 30, "the worker")
        assert queue_admin.pause("default")
        assert not queue_admin.pause("default")
        time.sleep(2)  # every worker honours it within 2 s
        held = enqueue(jobs.record_start, STARTS)  # a paused queue still accepts jobs
        other = enqueue(jobs.record_start, STARTS, queue="low")
        wait_for(lambda: status_of(other) == JobStatus.FINISHED, 10, "the other queue's job")
        time.sleep(1)
        assert status_of(held) == JobStatus.QUEUED
        paused_at = time.monotonic()
        assert queue_admin.resume("default")
        wait_for(lambda: status_of(held) == JobStatus.FINISHED, 10, "the held job")
        assert time.monotonic() - paused_at < 3
    worker.terminate()
    assert worker.wait(timeout=30) == 0


@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_a_quiet_worker_finishes_its_jobs_takes_no_more_and_stops_on_sigterm(
    app, live_redis, rq_worker_process, mode
):
    worker = rq_worker_process(env={"WORKER_MODE": mode, "WORKER_CONCURRENCY": "2"})
    with app.app_context():
        running = enqueue(jobs.slow_and_recorded, STARTS, 3)
        wait_for(lambda: status_of(running) == JobStatus.STARTED, 30, "the job to start")
        worker.send_signal(signal.SIGTSTP)
        time.sleep(1.5)
        later = enqueue(jobs.record_start, STARTS)
        wait_for(lambda: status_of(running) == JobStatus.FINISHED, 10, "the running job")
        time.sleep(1.5)
        assert status_of(later) == JobStatus.QUEUED
    assert worker.poll() is None  # quiet, not gone
    worker.terminate()
    assert worker.wait(timeout=30) == 0
    assert "quiet" in rq_worker_process.log_path.read_text()


def test_the_cli_pauses_resumes_and_shows_paused_queues(app, live_redis, runner):
    result = runner.invoke(args=["jobs", "pause", "mailers"])
    assert result.exit_code == 0 and "mailers paused" in result.output
    assert "paused: mailers" in runner.invoke(args=["jobs", "stats"]).output
    assert "was paused already" in runner.invoke(args=["jobs", "pause", "mailers"]).output
    assert "mailers resumed" in runner.invoke(args=["jobs", "resume", "mailers"]).output
    assert "paused:" not in runner.invoke(args=["jobs", "stats"]).output
    bad = runner.invoke(args=["jobs", "pause", "nope"])
    assert bad.exit_code == 2 and "'nope' is not one of" in bad.output
