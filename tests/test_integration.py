"""The real thing: PostgreSQL or SQLite, the real Redis, and a forking ``rq worker``."""

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from rq.job import Job, JobStatus
from sqlalchemy import select

from blog.extensions import db
from blog.models import DONE, PENDING, TAGGER, Post
from blog.queues import enqueue, get_queue
from workers.demo import demo
from workers.maintenance import requeue_stranded_work

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

POST = {"title": "Background jobs with Redis", "body": "Redis and RQ run background jobs."}


def the_post() -> Post:
    return db.session.scalars(select(Post)).one()


def test_a_post_gets_its_tags_from_a_real_worker(client, auth, app, ada, live_redis, rq_worker):
    auth.login()
    assert client.post("/posts/new", data=POST).status_code == 302
    with app.app_context():
        assert the_post().tagging_state == PENDING
    output = rq_worker().stdout
    assert "workers.tagging.auto_tag_post on default: finished" in output
    with app.app_context():
        post = the_post()
        assert post.tagging_state == DONE
        assert "redis" in post.tag_names(TAGGER)


def test_a_flaky_tagger_is_retried_by_the_worker_and_succeeds(
    client, auth, app, ada, live_redis, rq_worker
):
    app.config["RETRY_BACKOFF_FACTOR"] = 1  # the retry waits 15 s or more: not in this burst
    auth.login()
    client.post("/posts/new", data=POST)
    output = rq_worker(env={"TAGGER_FAILURE_RATE": "1"}).stdout
    assert "failed, retry scheduled" in output
    with app.app_context():
        registry = get_queue("default").scheduled_job_registry
        (job_id,) = registry.get_job_ids()
        assert the_post().tagging_state == PENDING
        live_redis.zadd(registry.key, {job_id: 0})  # the 15 s have passed
    output = rq_worker(env={"TAGGER_FAILURE_RATE": "0"}).stdout
    assert "workers.tagging.auto_tag_post on default: finished" in output
    with app.app_context():
        assert the_post().tagging_state == DONE


def test_redis_down_while_a_post_is_created_loses_nothing(
    client, auth, app, ada, live_redis, rq_worker, redis_server
):
    server = redis_server()
    app.extensions["redis"] = server.client()
    server.stop()
    auth.login()
    assert client.post("/posts/new", data=POST).status_code == 302
    with app.app_context():
        assert the_post().tagging_state == PENDING

    server.start()
    app.config["STRANDED_AFTER_SECONDS"] = 0
    with app.app_context():
        assert requeue_stranded_work() == {"posts": [the_post().id]}
        assert get_queue("default").count == 1
    rq_worker(env={"REDIS_URL": server.url})
    with app.app_context():
        assert the_post().tagging_state == DONE


def start_worker(process_env, **env) -> subprocess.Popen:
    return subprocess.Popen(
        [BIN / "rq", "worker", "-c", "workers.settings", "-w", "workers.worker.Worker"],
        cwd=ROOT,
        env={**process_env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def wait_for_status(job: Job, status: JobStatus, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while job.get_status(refresh=True) != status:
        assert time.monotonic() < deadline, f"job {job.id} never became {status}"
        time.sleep(0.1)


def test_sigterm_lets_a_short_job_finish(app, live_redis, process_env):
    with app.app_context():
        job = enqueue(demo, 2, "short")
    worker = start_worker(process_env, WORKER_SHUTDOWN_GRACE="10")
    wait_for_status(job, JobStatus.STARTED)
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=15)
    assert worker.returncode == 0, output
    assert job.get_status(refresh=True) == JobStatus.FINISHED


def test_sigterm_requeues_a_job_too_long_for_the_grace_period(app, live_redis, process_env):
    with app.app_context():
        job = enqueue(demo, 60, "long")
        queue = get_queue("default")
    worker = start_worker(process_env, WORKER_SHUTDOWN_GRACE="2")
    wait_for_status(job, JobStatus.STARTED)
    started = time.monotonic()
    worker.send_signal(signal.SIGTERM)
    output, _ = worker.communicate(timeout=20)
    assert time.monotonic() - started < 10, output
    assert worker.returncode == 0
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    assert queue.job_ids == [job.id]
    assert queue.failed_job_registry.count == 0
    assert "interrupted by a shutdown; back at the front of default" in output
