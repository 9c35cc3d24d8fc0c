"""Recurring jobs that keep the app healthy; ``workers/cron.py`` schedules them."""

import functools
import logging
from datetime import timedelta

from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import and_, func, inspect, or_, select

from blog import job_stats
from blog.extensions import db
from blog.models import Email, Post, PostTag, Tag, TaggingState, User, utcnow
from blog.queues import redis_connection
from workers import in_app_context
from workers.mailers import (
    email_job_id,
    lease_cutoff,
    reminder_due,
    reminder_job_id,
    schedule_email,
    schedule_signup_reminder,
)
from workers.tagging import schedule_tagging, tagging_job_id

log = logging.getLogger(__name__)

_IN_FLIGHT = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}


def job_in_flight(job_id: str) -> bool:
    """Is a job with this id waiting, running, or due to run later?"""
    try:
        return Job.fetch(job_id, connection=redis_connection()).get_status() in _IN_FLIGHT
    except NoSuchJobError:
        return False


def missing_tables() -> list[str]:
    """The app's tables that the database does not have (yet)."""
    return sorted(set(db.metadata.tables) - set(inspect(db.engine).get_table_names()))


def once_migrated(job):
    """Skip the job, with a log line, while the database has not been migrated.

    On a first deploy the clock and the worker may well start before the web process has run
    ``flask db upgrade``; the job then has nothing to do yet, and fails nothing. A minute later
    the clock enqueues it again.
    """

    @functools.wraps(job)
    def run(*args, **kwargs):
        missing = missing_tables()
        if missing:
            log.warning(
                "%s skipped: the database is not migrated yet (no table %s)",
                job.__name__,
                ", ".join(missing),
            )
            return None
        return job(*args, **kwargs)

    return run


@in_app_context
@once_migrated
def requeue_stranded_work() -> dict | None:
    """Enqueue again the work whose job was lost; return the ids of posts, emails and users.

    A post is saved with its tagging pending, an email is written unsent, and each one's job
    is enqueued after the commit; if Redis was down just then, nothing will ever run that job.
    Such rows are still pending after ``STRANDED_AFTER_SECONDS``, with no job in flight:
    enqueue them again. So is an email whose sender died holding its claim (the lease ran
    out) when no retry was left to take it over.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=current_app.config["STRANDED_AFTER_SECONDS"])
    posts = db.session.scalars(
        select(Post).where(
            Post.tagging_state == TaggingState.PENDING, Post.tagging_changed_at < cutoff
        )
    ).all()
    emails = db.session.scalars(
        select(Email).where(
            Email.sent_at.is_(None),
            Email.failed_at.is_(None),
            or_(
                and_(Email.claimed_at.is_(None), Email.created_at < cutoff),
                Email.claimed_at < lease_cutoff(now),
            ),
        )
    ).all()
    # A signup's reminder waits in Redis for a day: one lost with Redis (down at the signup,
    # or its data lost since) is scheduled again while it is not due yet.
    awaiting_reminder = db.session.scalars(
        select(User).where(
            User.created_at < cutoff,
            User.created_at > now - timedelta(seconds=current_app.config["SIGNUP_REMINDER_DELAY"]),
        )
    ).all()
    requeued = {"posts": [], "emails": [], "reminders": []}
    for post in posts:
        if not job_in_flight(tagging_job_id(post)):
            schedule_tagging(post)
            requeued["posts"].append(post.id)
    for email in emails:
        if not job_in_flight(email_job_id(email.id)):
            schedule_email(email)
            requeued["emails"].append(email.id)
    for user in awaiting_reminder:
        if not job_in_flight(reminder_job_id(user.id)):
            schedule_signup_reminder(user, delay=reminder_due(user) - now)
            requeued["reminders"].append(user.id)
    db.session.commit()
    if any(requeued.values()):
        log.warning("requeued stranded work: %s", requeued)
    return requeued


@in_app_context
@once_migrated
def refresh_stats() -> dict | None:
    """Work out the blog's figures for the stats page and cache them in Redis."""
    words = 0
    for body in db.session.scalars(select(Post.body).execution_options(yield_per=500)):
        words += len(body.split())
    top_tags = db.session.execute(
        select(Tag.name, func.count(PostTag.post_id).label("posts"))
        .join(PostTag)
        .group_by(Tag.name)
        .order_by(func.count(PostTag.post_id).desc(), Tag.name)
        .limit(10)
    ).all()
    tagging = db.session.execute(
        select(Post.tagging_state, func.count()).group_by(Post.tagging_state)
    ).all()
    stats = {
        "users": db.session.scalar(select(func.count(User.id))),
        "posts": db.session.scalar(select(func.count(Post.id))),
        "words": words,
        "tags": db.session.scalar(select(func.count(Tag.id))),
        "top_tags": [{"name": name, "posts": posts} for name, posts in top_tags],
        "tagging": {str(state): count for state, count in tagging},
        "computed_at": utcnow().isoformat(),
    }
    job_stats.store_blog_stats(redis_connection(), stats)
    return stats
