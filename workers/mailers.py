"""Sending the outbox's email, each message once, in jobs on the ``mailers`` queue.

How "once" holds. The job may run more than once for one email: a retry after an error, a
duplicate enqueue, two workers that each took a copy, a job run again because its worker
died. Each run first *claims* the row, naming the RQ worker it runs on, with one conditional
UPDATE::

    UPDATE emails SET claimed_at = now, claimed_by = :worker
    WHERE id = :id AND sent_at IS NULL AND (claimed_at IS NULL OR claimed_at < now - lease)

and commits. The database lets one UPDATE at a time change the row (PostgreSQL's row lock,
SQLite's write lock), and the next one re-reads the WHERE after the first committed, so
exactly one run gets the claim; the others find the email sent (and stop) or claimed. The
winner sends, then sets ``sent_at``.

- An SMTP error, a timeout, the worker stopping: the run gives its claim back and raises.
- A worker killed mid-send (SIGKILL, out of memory, a dyno restarted) cannot. Its claim
  names it, and Redis tells within a few heartbeats that it is dead: a live worker renews
  its key every ``WORKER_HEARTBEAT`` seconds (``workers.recovery.alive``). That is also when
  the recovery runs its job again. A run that finds the email claimed by a dead worker takes
  the claim over with a second conditional UPDATE, on the claim as it saw it (``claimed_by``
  and ``claimed_at``), so that of several runs taking over at once one wins. So does a run
  that finds a claim in its own worker's name: a worker runs one job at a time, so the run
  that made it is over (a forking worker's work-horse was killed).
- A claim whose worker is alive is left to it: the run fails with ``EmailBeingSent``, and is
  retried later.
- The claim is also a *lease*, for the claims that no worker's death ends: one made outside
  RQ (an inline job names no worker), or one whose worker lives on after the run (a killed
  work-horse, the job retried on another worker). Once older than
  ``MAIL_CLAIM_LEASE_SECONDS`` any run may take it over. The lease outlives any live attempt:
  a sending job is stopped at its 60 s timeout (in a thread, or by RQ killing its work-horse
  at most 60 s later): 60 + 60 < 180.
- If every retry ran out meanwhile, ``requeue_stranded_work`` enqueues the email again once
  the lease ran out.

Why not PostgreSQL's ``SELECT ... FOR UPDATE SKIP LOCKED``, holding the row lock while
sending, so that a killed worker's lock goes with its connection? SQLite has no row locks: it
would hold the lock of the whole database for the seconds an SMTP server takes, and every
signup and post would wait. The claim works the same on both.

What remains: a run killed (or cut off from the database) after the SMTP server accepted the
message but before ``sent_at`` was committed. Nothing on our side can tell that from a run
killed just before sending, so the message goes again. It also goes twice if a worker is
taken for dead while it sends: cut off from Redis, or its process frozen, for a few
heartbeats in the middle of a send. (The recovery runs its jobs again then too: the claim
trusts the runtime's sign of death.) Every attempt sends the message with the same
Message-ID, chosen when the row was written, so mail clients and providers that
de-duplicate by Message-ID (Gmail does) show it once.
"""

import logging
from datetime import datetime, timedelta

from flask import current_app
from rq import get_current_job
from sqlalchemy import exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from blog.extensions import db
from blog.mail import SIGNUP_REMINDER, build_message, deliver, signup_reminder_email
from blog.models import Email, Post, User, utcnow
from blog.queues import backoff, enqueue_after_commit, redis_connection
from workers import in_app_context, is_last_attempt
from workers.recovery import alive

log = logging.getLogger(__name__)

MAIL_RETRIES = 5
REMINDER_RETRIES = 3
# Seconds a sending job may run: an SMTP conversation takes a few. See the lease above.
MAIL_JOB_TIMEOUT = 60


class EmailBeingSent(Exception):
    """Another run holds the claim on this email, and may be sending it right now."""


def user_tag(user_id: int | None) -> tuple[str, ...]:
    return (f"user:{user_id}",) if user_id is not None else ()


def email_job_id(email_id: int) -> str:
    return f"send-email-{email_id}"


def schedule_email(email: Email) -> None:
    """Enqueue the sending of ``email`` once the current transaction commits."""
    if email.id is None:
        db.session.flush()  # the job needs the email's id
    enqueue_after_commit(
        send_email,
        email.id,
        queue="mailers",
        tags=(f"email:{email.id}", *user_tag(email.user_id), "mail"),
        job_id=email_job_id(email.id),
        job_timeout=MAIL_JOB_TIMEOUT,
        retry=backoff(MAIL_RETRIES),
    )


def reminder_job_id(user_id: int) -> str:
    return f"signup-reminder-{user_id}"


def reminder_due(user: User) -> datetime:
    return user.created_at + timedelta(seconds=current_app.config["SIGNUP_REMINDER_DELAY"])


def schedule_signup_reminder(user: User, delay: timedelta | None = None) -> None:
    """Enqueue ``send_signup_reminder`` to run in ``delay`` (at a signup, the whole
    ``SIGNUP_REMINDER_DELAY``: a day by default), once the current transaction commits. Until
    then the job waits in RQ's scheduled registry: "Scheduled" in the dashboard."""
    if delay is None:
        delay = timedelta(seconds=current_app.config["SIGNUP_REMINDER_DELAY"])
    if user.id is None:
        db.session.flush()  # the job needs the user's id
    enqueue_after_commit(
        send_signup_reminder,
        user.id,
        queue="mailers",
        tags=(f"user:{user.id}", "reminder"),
        delay=max(delay, timedelta(0)),
        job_id=reminder_job_id(user.id),
        job_timeout=MAIL_JOB_TIMEOUT,
        retry=backoff(REMINDER_RETRIES),
    )


@in_app_context
def send_signup_reminder(user_id: int) -> str:
    """Remind a user who has not posted since signing up; say what happened.

    Whether to send is decided when the job runs, a day after the signup, not when it was
    enqueued. The reminder is an outbox row like any email: the unique (user, kind) key lets
    only one ever exist, and ``send_email`` delivers it exactly once.
    """
    user = db.session.get(User, user_id)
    if user is None:
        return "gone"
    if db.session.scalar(select(exists().where(Post.author_id == user_id))):
        log.info("user %s has posted already: no reminder", user_id)
        return "not needed"
    reminder = db.session.scalar(
        select(Email).where(Email.user_id == user_id, Email.kind == SIGNUP_REMINDER)
    )
    if reminder is None:
        reminder = signup_reminder_email(user)
        db.session.add(reminder)
        try:
            db.session.commit()
        except IntegrityError:  # a second copy of this job wrote it first
            db.session.rollback()
            return "already written"
    return send_email(reminder.id)


@in_app_context
def send_email(email_id: int) -> str:
    """Send the outbox row ``email_id`` unless it was sent already; say what happened."""
    worker = this_worker()
    claimed_at = claim(email_id, worker)
    email = db.session.get(Email, email_id)
    if claimed_at is None and email is not None:
        claimed_at = take_over_if_abandoned(email, worker)
    if claimed_at is None:
        return not_claimed(email_id, email)
    message = build_message(email)
    db.session.commit()  # the claim; and no transaction stays open during the slow send
    try:
        deliver(message)
    except BaseException:  # also the worker stopping the job, which is no Exception
        release(email_id, claimed_at, give_up=is_last_attempt())
        raise
    mark_sent(email_id)
    log.info("email %s sent as %s", email_id, message["Message-ID"])
    return "sent"


def this_worker() -> str | None:
    """The name of the RQ worker running this job; None when the job runs outside RQ."""
    job = get_current_job()
    return job.worker_name if job is not None else None


def claim(email_id: int, worker: str | None) -> datetime | None:
    """Claim the unsent email for this run; the claim's time, or None if it is not free.

    The UPDATE must be the first statement of its transaction: SQLite cannot turn a
    transaction that has read into one that writes while another process writes.
    """
    now = utcnow()
    claimed = db.session.execute(
        update(Email)
        .where(
            Email.id == email_id,
            Email.sent_at.is_(None),
            or_(Email.claimed_at.is_(None), Email.claimed_at < lease_cutoff(now)),
        )
        .values(claimed_at=now, claimed_by=worker, failed_at=None)
    ).rowcount
    return now if claimed else None


def lease_cutoff(now: datetime) -> datetime:
    """A claim made before this has outlived its lease: the run that made it is dead."""
    return now - timedelta(seconds=current_app.config["MAIL_CLAIM_LEASE_SECONDS"])


def take_over_if_abandoned(email: Email, worker: str | None) -> datetime | None:
    """Take over the claim on ``email`` if the run that holds it is over: its worker is dead,
    or is this run's own. The new claim's time, or None."""
    email_id, held_by, claimed_at = email.id, email.claimed_by, email.claimed_at
    if email.sent_at is not None or held_by is None:
        return None  # sent; or claimed outside RQ, where only the lease tells
    db.session.commit()  # no transaction open across the Redis round trip (and see claim)
    if held_by != worker and held_by in alive(redis_connection(), [held_by]):
        return None
    return take_over(email_id, held_by, claimed_at, worker)


def take_over(
    email_id: int, held_by: str, claimed_at: datetime, worker: str | None
) -> datetime | None:
    """Take over the claim that ``held_by`` made at ``claimed_at``, if it still holds it; the
    new claim's time, or None. Of several runs trying at once, one wins, as in ``claim``."""
    now = utcnow()
    taken = db.session.execute(
        update(Email)
        .where(
            Email.id == email_id,
            Email.sent_at.is_(None),
            Email.claimed_by == held_by,
            Email.claimed_at == claimed_at,
        )
        .values(claimed_at=now, claimed_by=worker)
    ).rowcount
    if not taken:
        return None
    log.warning(
        "email %s: taking over the claim of %s, whose run is over (claimed at %s)",
        email_id,
        held_by,
        claimed_at.isoformat(),
    )
    return now


def not_claimed(email_id: int, email: Email | None) -> str:
    """Why the claim failed: the email is gone or sent (done), or another run holds it."""
    if email is None:
        log.info("email %s is gone; nothing to send", email_id)
        return "gone"
    if email.sent_at is not None:
        log.info("email %s was sent already, at %s", email_id, email.sent_at.isoformat())
        return "already sent"
    raise EmailBeingSent(
        f"email {email_id} is claimed by {email.claimed_by or 'a run outside RQ'} since "
        f"{email.claimed_at}; it is retried later, and taken over if that run died"
    )


def release(email_id: int, claimed_at: datetime, give_up: bool) -> None:
    """Give back this run's claim after a failed send, so that a retry can claim it at once;
    with ``give_up``, mark the email failed.

    ``claimed_at`` tells this run's claim from a later one: another run may have taken the
    email over (after the lease ran out, or taking this run for dead), and that run's claim
    is not ours to release.
    """
    db.session.execute(
        update(Email)
        .where(Email.id == email_id, Email.claimed_at == claimed_at, Email.sent_at.is_(None))
        .values(claimed_at=None, claimed_by=None, failed_at=utcnow() if give_up else None)
    )
    db.session.commit()


def mark_sent(email_id: int) -> None:
    db.session.execute(update(Email).where(Email.id == email_id).values(sent_at=utcnow()))
    db.session.commit()
