"""Sending email from the outbox, exactly once, whatever runs the job how often."""

import threading
from datetime import timedelta

import pytest
from flask import current_app
from rq.job import Job, JobStatus
from rq.worker import Worker
from sqlalchemy import select, update

from blog import queue_admin
from blog.extensions import db
from blog.models import Email, User, utcnow
from blog.queues import enqueue, get_queue
from tests import factories
from tests.support.worker import InProcessWorker
from workers import mailers
from workers.mailers import (
    MAIL_RETRIES,
    EmailBeingSent,
    claim,
    release,
    send_email,
    send_signup_reminder,
)
from workers.maintenance import requeue_stranded_work


@pytest.fixture
def welcome(client, auth, app) -> int:
    """The id of the welcome email of a user who just signed up (its job is queued)."""
    auth.signup("new@example.com")
    with app.app_context():
        return db.session.scalars(select(Email)).one().id


def the_email() -> Email:
    return db.session.scalars(select(Email)).one()


# A worker name that no worker has in Redis: the name of a dead one.
DEAD_WORKER = "dyno.41.dead00.1"


def set_claim(email_id: int, seconds_ago: float, by: str | None = None) -> None:
    """Make the email look claimed by a run that started ``seconds_ago``, on the worker
    named ``by`` (None: a run outside RQ)."""
    claimed_at = utcnow() - timedelta(seconds=seconds_ago)
    db.session.execute(
        update(Email).where(Email.id == email_id).values(claimed_at=claimed_at, claimed_by=by)
    )
    db.session.commit()


def live_worker(app, name: str) -> Worker:
    """A worker registered in Redis, as a running one is."""
    worker = Worker(["mailers"], name=name, connection=app.extensions["redis"])
    worker.register_birth()
    return worker


def test_the_worker_sends_the_welcome_email(app, welcome, mail_catcher, run_jobs):
    assert run_jobs() is True
    (message,) = mail_catcher.messages
    with app.app_context():
        email = the_email()
        assert email.state == "sent"
        assert message["Message-ID"] == email.message_id
        assert message["Subject"] == "Welcome to Flask Background Jobs"
        job = Job.fetch(f"send-email-{welcome}", connection=app.extensions["redis"])
        assert email.claimed_by == job.worker_name  # the claim named the worker that ran it
        assert job.origin == "mailers"
        assert job.return_value() == "sent"


def test_without_mail_url_the_email_is_delivered_to_the_outbox(app, welcome, run_jobs):
    run_jobs()
    with app.app_context():
        assert the_email().state == "sent"


def test_a_second_run_sends_nothing(app, welcome, mail_catcher, run_jobs):
    run_jobs()
    with app.app_context():
        assert send_email(welcome) == "already sent"
    assert len(mail_catcher.messages) == 1


def test_a_duplicate_enqueue_sends_once(app, welcome, mail_catcher, run_jobs):
    with app.app_context():
        enqueue(send_email, welcome, queue="mailers", job_id="a-duplicate")
        assert get_queue("mailers").count == 2
    run_jobs()
    assert len(mail_catcher.messages) == 1
    with app.app_context():
        duplicate = Job.fetch("a-duplicate", connection=app.extensions["redis"])
        assert duplicate.return_value() == "already sent"


def test_a_refusing_smtp_server_is_retried_and_the_email_sent_once(
    app, welcome, mail_catcher, run_jobs
):
    mail_catcher.refusals = 2
    run_jobs()
    assert len(mail_catcher.messages) == 1
    with app.app_context():
        assert the_email().state == "sent"
        assert get_queue("mailers").failed_job_registry.count == 0


def test_when_the_retries_run_out_the_email_is_failed_and_stays_so(
    app, welcome, mail_catcher, run_jobs
):
    mail_catcher.refusals = MAIL_RETRIES + 1
    app.config["STRANDED_AFTER_SECONDS"] = 0
    run_jobs()
    assert mail_catcher.messages == []
    with app.app_context():
        email = the_email()
        assert (email.state, email.claimed_at, email.claimed_by) == ("failed", None, None)
        job = Job.fetch(f"send-email-{welcome}", connection=app.extensions["redis"])
        assert job.get_status() == JobStatus.FAILED
        assert "SMTPDataError" in job.latest_result().exc_string
        assert requeue_stranded_work()["emails"] == []


def test_a_failed_email_can_be_retried_by_hand(app, welcome, mail_catcher, run_jobs):
    mail_catcher.refusals = MAIL_RETRIES + 1
    run_jobs()
    with app.app_context():
        assert queue_admin.requeue_failed() == 1  # flask jobs retry-failed
    run_jobs()
    assert len(mail_catcher.messages) == 1
    with app.app_context():
        assert the_email().state == "sent"


def test_an_email_being_sent_by_another_run_is_left_to_it(app, welcome, mail_catcher):
    with app.app_context():
        set_claim(welcome, seconds_ago=5)
        with pytest.raises(EmailBeingSent, match=f"email {welcome} is claimed"):
            send_email(welcome)
        assert the_email().state == "sending"
    assert mail_catcher.messages == []


def test_an_email_being_sent_by_a_live_worker_is_left_to_it(app, welcome, mail_catcher):
    with app.app_context():
        live_worker(app, "dyno.7.alive0.1")
        set_claim(welcome, seconds_ago=5, by="dyno.7.alive0.1")
        with pytest.raises(EmailBeingSent) as being_sent:
            send_email(welcome)
        assert "claimed by dyno.7.alive0.1" in str(being_sent.value)
        assert the_email().claimed_by == "dyno.7.alive0.1"
    assert mail_catcher.messages == []


def test_a_claim_older_than_the_lease_is_taken_over(app, welcome, mail_catcher):
    # The run that claimed it was killed mid-send: no one else will ever send it.
    lease = app.config["MAIL_CLAIM_LEASE_SECONDS"]
    with app.app_context():
        set_claim(welcome, seconds_ago=lease + 1)
        assert send_email(welcome) == "sent"
        assert the_email().state == "sent"
    assert len(mail_catcher.messages) == 1


def test_a_claim_of_a_dead_worker_is_taken_over_at_once(app, welcome, mail_catcher, caplog):
    with app.app_context():
        set_claim(welcome, seconds_ago=1, by=DEAD_WORKER)
        assert send_email(welcome) == "sent"
        assert the_email().state == "sent"
    assert len(mail_catcher.messages) == 1
    assert f"taking over the claim of {DEAD_WORKER}" in caplog.text


def test_a_claim_of_the_runs_own_worker_is_taken_over(app, welcome, mail_catcher):
    # A worker runs one job at a time: a claim in its name is from an earlier run of it
    # that ended without giving it back (a forking worker's work-horse killed).
    worker = InProcessWorker(
        ["mailers"], name="dyno.7.self00.1", connection=app.extensions["redis"]
    )
    with app.app_context():
        set_claim(welcome, seconds_ago=1, by=worker.name)
        worker.work(burst=True)
        job = Job.fetch(f"send-email-{welcome}", connection=app.extensions["redis"])
        assert job.return_value() == "sent"
    assert len(mail_catcher.messages) == 1


def test_of_runs_taking_over_a_dead_workers_claim_at_once_one_sends(
    app, welcome, mail_catcher, monkeypatch
):
    runs = 2
    checked = threading.Barrier(runs, timeout=10)

    def alive(connection, names):
        checked.wait()  # both runs found the worker dead before either takes the claim over
        return set()

    monkeypatch.setattr(mailers, "alive", alive)
    with app.app_context():
        set_claim(welcome, seconds_ago=1, by=DEAD_WORKER)
    outcomes = []

    def run():
        with app.app_context():
            try:
                outcomes.append(send_email(welcome))
            except EmailBeingSent:
                outcomes.append("being sent")

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == runs
    assert outcomes.count("sent") == 1  # the other found it being sent, or sent already
    assert len(mail_catcher.messages) == 1


def test_of_runs_claiming_at_once_exactly_one_gets_the_email(app, welcome):
    runs = 6
    start = threading.Barrier(runs)
    claims = []

    def run():
        with app.app_context():
            start.wait()
            claims.append(claim(welcome, worker=None))
            db.session.commit()

    threads = [threading.Thread(target=run) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(claims) == runs
    assert len([c for c in claims if c is not None]) == 1


def test_a_run_whose_claim_was_taken_over_does_not_release_the_new_one(app, welcome):
    with app.app_context():
        old_claim = claim(welcome, worker=None)
        db.session.commit()
        set_claim(welcome, seconds_ago=0)  # another run took the email over
        release(welcome, old_claim, give_up=True)
        email = the_email()
        assert email.state == "sending"
        assert email.claimed_at > old_claim


def test_an_email_that_is_gone_is_not_an_error(app_ctx):
    assert send_email(12345) == "gone"


@pytest.mark.parametrize(
    ("situation", "requeued"),
    [
        ("unsent, its job lost", True),
        ("unsent, its job lost, but written just now", False),
        ("unsent, its job in flight", False),
        ("sent", False),
        ("failed", False),
        ("claimed, within the lease", False),
        ("claimed, the lease ran out", True),
    ],
)
def test_requeue_stranded_work_enqueues_lost_emails_again(app, welcome, situation, requeued):
    app.config["STRANDED_AFTER_SECONDS"] = 0 if "just now" not in situation else 3600
    lease = app.config["MAIL_CLAIM_LEASE_SECONDS"]
    with app.app_context():
        if "in flight" not in situation:
            get_queue("mailers").empty()  # Redis lost the job
        values = {
            "sent": {"sent_at": utcnow()},
            "failed": {"failed_at": utcnow()},
            "claimed, within the lease": {"claimed_at": utcnow()},
            "claimed, the lease ran out": {"claimed_at": utcnow() - timedelta(seconds=lease + 1)},
        }.get(situation)
        if values:
            db.session.execute(update(Email).values(**values))
            db.session.commit()

        emails = [welcome] if requeued else []
        assert requeue_stranded_work() == {"posts": [], "emails": emails, "reminders": []}
        jobs = 1 if requeued or "in flight" in situation else 0
        assert get_queue("mailers").job_ids == [f"send-email-{welcome}"] * jobs


def test_redis_down_at_signup_loses_no_email(app, make_app, caplog):
    # Redis keeps both the queues and the signup rate limit's counts.
    down = "redis://127.0.0.1:1/0?socket_connect_timeout=1"
    web = make_app(REDIS_URL=down, RATELIMIT_STORAGE_URI=down)
    response = web.test_client().post(
        "/signup",
        data={"email": "new@example.com", "password": "pass word", "confirm": "pass word"},
    )
    assert response.status_code == 302
    assert "could not enqueue send_email" in caplog.text

    app.config["STRANDED_AFTER_SECONDS"] = 0
    with app.app_context():
        email = the_email()
        assert email.state == "queued"
        assert requeue_stranded_work()["emails"] == [email.id]
        assert get_queue("mailers").job_ids == [f"send-email-{email.id}"]


def test_reminders_of_signups_made_while_redis_was_down_are_scheduled_again(app, make_app):
    down = "redis://127.0.0.1:1/0?socket_connect_timeout=1"
    web = make_app(REDIS_URL=down, RATELIMIT_STORAGE_URI=down)
    client = web.test_client()
    for number in range(3):
        password = "pass word"
        data = {"email": f"new{number}@example.com", "password": password, "confirm": password}
        assert client.post("/signup", data=data).status_code == 302

    app.config["STRANDED_AFTER_SECONDS"] = 0
    with app.app_context():
        users = db.session.scalars(select(User)).all()
        assert sorted(requeue_stranded_work()["reminders"]) == sorted(u.id for u in users)
        registry = get_queue("mailers").scheduled_job_registry
        for user in users:
            due = registry.get_scheduled_time(f"signup-reminder-{user.id}")
            expected = user.created_at + timedelta(seconds=app.config["SIGNUP_REMINDER_DELAY"])
            assert abs((due - expected).total_seconds()) < 1
        assert requeue_stranded_work()["reminders"] == []  # in flight now: left alone


def test_signup_schedules_a_reminder_for_a_day_later(auth, app):
    auth.signup("new@example.com")
    with app.app_context():
        user_id = db.session.scalars(select(Email)).one().user_id
        registry = get_queue("mailers").scheduled_job_registry
        job_id = f"signup-reminder-{user_id}"
        assert registry.get_job_ids() == [job_id]
        due = registry.get_scheduled_time(job_id) - utcnow()
        assert timedelta(hours=23, minutes=59) < due <= timedelta(hours=24)
        assert Job.fetch(job_id, connection=app.extensions["redis"]).args == (user_id,)


def test_a_taken_email_gets_no_second_reminder(auth, app, author_id):
    auth.signup("ada@example.com")
    with app.app_context():
        assert get_queue("mailers").scheduled_job_registry.count == 0


def test_the_reminder_is_skipped_for_a_user_who_has_posted(app_ctx, author_id):
    factories.post(author_id)
    assert send_signup_reminder(author_id) == "not needed"
    assert db.session.scalars(select(Email)).all() == []


def test_the_reminder_is_sent_once_to_a_user_who_has_not_posted(app_ctx, author_id, mail_catcher):
    current_app.config.update(MAIL_URL=mail_catcher.url, APP_URL="https://blog.example.com")
    assert send_signup_reminder(author_id) == "sent"
    assert send_signup_reminder(author_id) == "already sent"
    (message,) = mail_catcher.messages
    assert message["To"] == "ada@example.com"
    assert message["Subject"] == "Your first post is waiting"
    email = db.session.scalars(select(Email)).one()
    assert (email.kind, email.state) == ("signup_reminder", "sent")
    assert email.message_id == f"<signup_reminder.{author_id}@blog.example.com>"
    assert "https://blog.example.com/posts/new" in email.text_body


def test_the_reminder_for_a_deleted_user_is_not_an_error(app_ctx):
    assert send_signup_reminder(424242) == "gone"
