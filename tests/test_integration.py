"""The real thing: PostgreSQL or SQLite, the real Redis, and a forking ``rq worker``."""

import signal
import time
from datetime import timedelta

import psutil
import pytest
from rq.job import Job, JobStatus
from rq.worker import Worker
from sqlalchemy import select

from blog.extensions import db
from blog.models import TAGGER, Email, Post, TaggingState, utcnow
from blog.queues import enqueue, get_queue
from tests.dynos import kill_tree, wait_for
from workers.demo import demo
from workers.maintenance import requeue_stranded_work

pytestmark = pytest.mark.integration

POST = {"title": "Background jobs with Redis", "body": "Redis and RQ run background jobs."}


def the_post() -> Post:
    return db.session.scalars(select(Post)).one()


def test_a_post_gets_its_tags_from_a_real_worker(
    client, auth, app, author_id, live_redis, rq_worker
):
    auth.login()
    assert client.post("/posts/new", data=POST).status_code == 302
    with app.app_context():
        assert the_post().tagging_state == TaggingState.PENDING
    output = rq_worker().stdout
    assert "workers.tagging.auto_tag_post on default: finished" in output
    with app.app_context():
        post = the_post()
        assert post.tagging_state == TaggingState.DONE
        assert "redis" in post.tag_names(TAGGER)


def test_a_flaky_tagger_is_retried_by_the_worker_and_succeeds(
    client, auth, app, author_id, live_redis, rq_worker
):
    app.config["RETRY_BACKOFF_FACTOR"] = 1  # the retry waits 15 s or more: not in this burst
    auth.login()
    client.post("/posts/new", data=POST)
    output = rq_worker(env={"TAGGER_FAILURE_RATE": "1"}).stdout
    assert "failed in " in output and ", retry scheduled" in output
    with app.app_context():
        registry = get_queue("default").scheduled_job_registry
        (job_id,) = registry.get_job_ids()
        assert the_post().tagging_state == TaggingState.PENDING
        live_redis.zadd(registry.key, {job_id: 0})  # the 15 s have passed
    output = rq_worker(env={"TAGGER_FAILURE_RATE": "0"}).stdout
    assert "workers.tagging.auto_tag_post on default: finished" in output
    with app.app_context():
        assert the_post().tagging_state == TaggingState.DONE


def test_redis_down_while_a_post_is_created_loses_nothing(
    client, auth, app, author_id, live_redis, rq_worker, redis_server
):
    server = redis_server()
    app.extensions["redis"] = server.client()
    server.stop()
    auth.login()
    assert client.post("/posts/new", data=POST).status_code == 302
    with app.app_context():
        assert the_post().tagging_state == TaggingState.PENDING

    server.start()
    app.config["STRANDED_AFTER_SECONDS"] = 0
    with app.app_context():
        assert requeue_stranded_work() == {
            "posts": [the_post().id],
            "emails": [],
            "reminders": [author_id],  # a user with no reminder scheduled, as Redis was empty
        }
        assert get_queue("default").count == 1
    rq_worker(env={"REDIS_URL": server.url})
    with app.app_context():
        assert the_post().tagging_state == TaggingState.DONE


def wait_for_status(job: Job, status: JobStatus, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while job.get_status(refresh=True) != status:
        assert time.monotonic() < deadline, f"job {job.id} never became {status}"
        time.sleep(0.1)


MODES = pytest.mark.parametrize("mode", ["threads", "fork"])


@MODES
def test_sigterm_lets_a_short_job_finish(app, live_redis, rq_worker_process, mode):
    with app.app_context():
        job = enqueue(demo, 2, "short")
    worker = rq_worker_process(env={"WORKER_SHUTDOWN_GRACE": "10", "WORKER_MODE": mode})
    wait_for_status(job, JobStatus.STARTED)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=15) == 0
    assert job.get_status(refresh=True) == JobStatus.FINISHED


@MODES
def test_sigterm_requeues_a_job_too_long_for_the_grace_period(
    app, live_redis, rq_worker_process, tmp_path, mode
):
    with app.app_context():
        job = enqueue(demo, 60, "long")
        queue = get_queue("default")
    worker = rq_worker_process(env={"WORKER_SHUTDOWN_GRACE": "2", "WORKER_MODE": mode})
    wait_for_status(job, JobStatus.STARTED)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0  # long before the 60 s job could have ended
    output = (tmp_path / "worker.log").read_text()
    assert job.get_status(refresh=True) == JobStatus.QUEUED
    assert queue.job_ids == [job.id]
    assert queue.failed_job_registry.count == 0
    assert "interrupted by its worker stopping; back at the front of default" in output


def the_email() -> Email:
    return db.session.scalars(select(Email)).one()


def test_a_real_worker_sends_the_welcome_email_by_smtp(
    auth, app, live_redis, rq_worker, mail_catcher
):
    auth.signup("new@example.com")
    output = rq_worker(env={"MAIL_URL": mail_catcher.url}).stdout
    assert "workers.mailers.send_email on mailers: finished" in output
    (message,) = mail_catcher.messages
    assert message["To"] == "new@example.com"
    with app.app_context():
        assert the_email().state == "sent"


@MODES
def test_a_worker_killed_mid_send_is_recovered_and_the_email_sent_once(
    auth, app, live_redis, rq_worker_process, mail_catcher, mode
):
    lease = 1  # seconds; then another run may take over the dead run's claim
    env = {
        "MAIL_URL": mail_catcher.url,
        "MAIL_CLAIM_LEASE_SECONDS": str(lease),
        "RETRY_BACKOFF_FACTOR": "0.1",  # a retry waits 1.5 s or more
        "WORKER_MODE": mode,
        "WORKER_CONCURRENCY": "1",
    }
    auth.signup("new@example.com")

    mail_catcher.stall_next_sender()
    worker = rq_worker_process(env=env)
    assert mail_catcher.stalled.wait(timeout=30), "the worker never reached the SMTP server"
    (process,) = psutil.Process(worker.pid).children()
    kill_tree(process.pid)  # mid-send: the SMTP server has not got the message

    def sent() -> bool:
        with app.app_context():
            db.session.expire_all()
            return the_email().state == "sent"

    wait_for(sent, 60, "the email to be sent")
    assert len(mail_catcher.messages) == 1
    output = (rq_worker_process.log_path).read_text()
    assert "abandoned (its worker" in output


def test_a_dyno_killed_mid_send_sends_the_email_once_soon_after_its_restart(
    auth, app, live_redis, rq_worker_process, mail_catcher
):
    # The lease stays at its 180 s, and retries wait as in production: the new run takes the
    # claim over because Redis says the worker that made it is dead. (Threads, the default
    # mode: RQ keeps a forking worker's key for a minute past its last heartbeat in a job.)
    env = {"MAIL_URL": mail_catcher.url, "RETRY_BACKOFF_FACTOR": "1", "WORKER_CONCURRENCY": "1"}
    auth.signup("new@example.com")

    mail_catcher.stall_next_sender()
    dyno = rq_worker_process(env=env)
    assert mail_catcher.stalled.wait(timeout=30), "the worker never reached the SMTP server"
    with app.app_context():
        killed_worker = the_email().claimed_by
    kill_tree(dyno.pid)  # the supervisor and its worker process: nothing is left to tell
    dyno.wait()
    killed_at = utcnow()
    rq_worker_process(env=env)

    def sent():
        with app.app_context():
            db.session.expire_all()
            email = the_email()
            return email.state == "sent" and (email.sent_at, email.claimed_by)

    sent_at, claimed_by = wait_for(sent, 60, "the email to be sent")
    assert len(mail_catcher.messages) == 1
    assert killed_worker is not None and claimed_by != killed_worker
    assert sent_at - killed_at < timedelta(seconds=30)  # not the lease's 180 s
    output = rq_worker_process.log_path.read_text()
    assert f"taking over the claim of {killed_worker}" in output


def test_a_dyno_killed_again_and_again_while_users_sign_up_sends_each_welcome_once(
    auth, app, live_redis, rq_worker_process, mail_catcher
):
    # The test, shortened: users sign up while the whole dyno is killed mid-send and
    # restarted, again and again.
    signups, kills, threads = 20, 4, 5
    app.config["SIGNUP_RATE_LIMIT"] = f"{signups} per hour"
    env = {
        "MAIL_URL": mail_catcher.url,
        "RETRY_BACKOFF_FACTOR": "1",
        "WORKER_CONCURRENCY": str(threads),
    }
    addresses = [f"user{number}@example.com" for number in range(signups)]
    killed: set[str] = set()  # the names of the workers of the dynos killed so far

    def mid_send() -> bool:
        """Every thread is held by the SMTP server, and the jobs of the workers killed before
        have been recovered: a kill now hits sends, and nothing else."""
        with app.app_context():
            started = get_queue("mailers").started_job_registry.get_job_ids()
        jobs = Job.fetch_many(started, connection=live_redis)
        recovered = not any(job and job.worker_name in killed for job in jobs)
        return mail_catcher.held == threads and recovered

    mail_catcher.holding = True
    dyno = rq_worker_process(env=env)
    for first in range(0, signups, signups // kills):
        for address in addresses[first : first + signups // kills]:
            auth.signup(address)
        wait_for(mid_send, 30, "every thread to be sending")
        killed |= {worker.name for worker in Worker.all(connection=live_redis)}
        kill_tree(dyno.pid)
        dyno.wait()
        last_kill = utcnow()
        dyno = rq_worker_process(env=env)
    mail_catcher.holding = False

    def all_sent():
        with app.app_context():
            db.session.expire_all()
            sent_at = db.session.scalars(select(Email.sent_at)).all()
            return None not in sent_at and sent_at

    sent_at = wait_for(all_sent, 60, "every welcome email to be sent")
    received = sorted(message["To"] for message in mail_catcher.messages)
    assert received == sorted(addresses)  # each once
    assert max(sent_at) - last_kill < timedelta(seconds=20)
    assert "taking over the claim" in rq_worker_process.log_path.read_text()


def test_the_signup_reminder_is_sent_by_a_real_worker_when_due(
    auth, app, live_redis, rq_worker, mail_catcher
):
    auth.signup("new@example.com")
    with app.app_context():
        registry = get_queue("mailers").scheduled_job_registry
        (job_id,) = registry.get_job_ids()
        live_redis.zadd(registry.key, {job_id: 0})  # a day has passed
    rq_worker(env={"MAIL_URL": mail_catcher.url})
    subjects = sorted(message["Subject"] for message in mail_catcher.messages)
    assert subjects == ["Welcome to Flask Background Jobs", "Your first post is waiting"]
