"""Recurring jobs that keep the app healthy; ``workers/cron.py`` schedules them.

All run every minute, so each must cost what its work costs, not what the tables hold: on a
large blog with nothing stranded (docs/performance.md measures a million posts and a
hundred thousand signups a day) they take milliseconds and a few round trips to Redis.
"""

import functools
import logging
from collections import Counter
from datetime import datetime, timedelta

from flask import current_app
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import and_, bindparam, delete, inspect, or_, select, update
from sqlalchemy.orm import load_only

from blog import dead_jobs, job_stats
from blog.extensions import db
from blog.models import (
    CountChange,
    Email,
    Post,
    RunningCount,
    Tag,
    TaggingState,
    User,
    upsert,
    utcnow,
)
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

# The states of a job that will still run: waiting, running, or due later.
IN_FLIGHT = {
    JobStatus.QUEUED,
    JobStatus.STARTED,
    JobStatus.SCHEDULED,
    JobStatus.DEFERRED,
    JobStatus.RATE_LIMITED,
    JobStatus.READY_TO_ENQUEUE,
}
# Jobs looked up in one round trip to Redis.
LOOKUP_BATCH = 1000
# Count changes added up by one statement.
FOLD_BATCH = 10_000


def jobs_in_flight(job_ids: list[str]) -> set[str]:
    """The ids among ``job_ids`` of the jobs that will still run.

    RQ's ``Job.fetch_many`` reads a whole batch in one round trip, where ``Job.fetch`` takes
    one per job. A record that a killed worker left half written makes it refuse the whole
    batch; such a batch is looked up one job at a time.
    """
    connection = redis_connection()
    found = set()
    for start in range(0, len(job_ids), LOOKUP_BATCH):
        batch = job_ids[start : start + LOOKUP_BATCH]
        try:
            jobs = Job.fetch_many(batch, connection=connection)
        except NoSuchJobError:
            jobs = [fetch_or_none(job_id) for job_id in batch]
        found.update(
            job.id for job in jobs if job is not None and job.get_status(refresh=False) in IN_FLIGHT
        )
    return found


def fetch_or_none(job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=redis_connection())
    except NoSuchJobError:
        return None


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
    out) when no retry was left to take it over. And a signup's reminder, which waits in
    Redis for a day, is scheduled again while it is not due yet if it was lost with Redis
    (down at the signup, or its data lost since): see ``signups_to_check``.

    Every job it might requeue is looked up in Redis at once (``jobs_in_flight``), and only
    the columns that name the jobs are read: a minute with nothing stranded costs a few
    indexed queries and three round trips, however large the tables.
    """
    now = utcnow()
    cutoff = now - timedelta(seconds=current_app.config["STRANDED_AFTER_SECONDS"])
    posts = db.session.scalars(
        select(Post)
        .options(load_only(Post.id, Post.content_version))
        .where(Post.tagging_state == TaggingState.PENDING, Post.tagging_changed_at < cutoff)
    ).all()
    emails = db.session.scalars(
        select(Email)
        .options(load_only(Email.id))
        .where(
            Email.sent_at.is_(None),
            Email.failed_at.is_(None),
            or_(
                and_(Email.claimed_at.is_(None), Email.created_at < cutoff),
                Email.claimed_at < lease_cutoff(now),
            ),
        )
    ).all()
    signups = signups_to_check(now, cutoff)
    in_flight = jobs_in_flight(
        [tagging_job_id(post) for post in posts]
        + [email_job_id(email.id) for email in emails]
        + [reminder_job_id(user.id) for user in signups]
    )
    requeued = {"posts": [], "emails": [], "reminders": []}
    for post in posts:
        if tagging_job_id(post) not in in_flight:
            schedule_tagging(post)
            requeued["posts"].append(post.id)
    for email in emails:
        if email_job_id(email.id) not in in_flight:
            schedule_email(email)
            requeued["emails"].append(email.id)
    for user in signups:
        if reminder_job_id(user.id) not in in_flight:
            schedule_signup_reminder(user, delay=reminder_due(user) - now)
            requeued["reminders"].append(user.id)
    db.session.commit()  # the jobs go to Redis now; one that cannot is logged, not raised
    rescheduled = [reminder_job_id(user_id) for user_id in requeued["reminders"]]
    if len(jobs_in_flight(rescheduled)) == len(rescheduled):
        set_reminders_checked_until(cutoff)
    if any(requeued.values()):
        log.warning("requeued stranded work: %s", requeued)
    return requeued


def signups_to_check(now: datetime, cutoff: datetime) -> list[User]:
    """The users whose reminder may have been lost, and is not due yet.

    Checking every signup of the last day each minute would cost a lookup per signup. A
    reminder is lost in two ways only: Redis was down at the signup, which the first run after
    ``cutoff`` passes the signup finds; or Redis lost its data since. So each run checks the
    signups since the last one, and records how far it checked in Redis itself
    (``REMINDERS_CHECKED_KEY``), beside the jobs it found: Redis loses data as a whole (a
    flush, a restart with no persistence) or back to a moment (a snapshot, a replica that was
    behind), never the mark without the jobs it vouches for. Once the mark is gone, the next
    run checks the whole day again, a thousand signups a round trip. The mark moves on only
    once every reminder the run scheduled is in Redis.

    Two things this does not undo: a reminder deleted on purpose (the dashboard, ``flask jobs
    clear``) stays deleted, and a Redis that evicts keys when full could drop a job and keep
    the mark (RQ needs ``maxmemory-policy noeviction`` anyway).
    """
    window_start = now - timedelta(seconds=current_app.config["SIGNUP_REMINDER_DELAY"])
    query = (
        select(User)
        .options(load_only(User.id, User.created_at))
        .where(User.created_at > window_start, User.created_at < cutoff)
    )
    checked_until = reminders_checked_until()
    if checked_until is not None:
        query = query.where(User.created_at >= checked_until)
    return db.session.scalars(query).all()


def reminders_checked_until() -> datetime | None:
    """Every signup before this had its reminder in flight, or was given one again."""
    mark = redis_connection().get(job_stats.REMINDERS_CHECKED_KEY)
    return datetime.fromisoformat(mark.decode()) if mark else None


def set_reminders_checked_until(moment: datetime) -> None:
    redis_connection().set(job_stats.REMINDERS_CHECKED_KEY, moment.isoformat())


@in_app_context
@once_migrated
def refresh_stats() -> dict | None:
    """Work out the blog's figures for the stats page and cache them in Redis.

    The database keeps the counts as rows change (``blog.models.RunningCount``): this adds
    in the changes of the last minute and reads a few rows, however large the blog.
    """
    add_up_count_changes()
    counts = dict(db.session.execute(select(RunningCount.name, RunningCount.value)).all())
    top_tags = db.session.execute(
        select(Tag.name, Tag.post_count)
        .where(Tag.post_count > 0)
        .order_by(Tag.post_count.desc(), Tag.name)
        .limit(10)
    ).all()
    db.session.commit()
    stats = {
        "users": counts.get("users", 0),
        "posts": counts.get("posts", 0),
        "words": counts.get("words", 0),
        "tags": counts.get("tags", 0),
        "top_tags": [{"name": name, "posts": posts} for name, posts in top_tags],
        "tagging": {
            # A post never tagged is counted under "None", the name its state always had here.
            name.removeprefix("tagging:") or "None": count
            for name, count in counts.items()
            if name.startswith("tagging:") and count
        },
        "computed_at": utcnow().isoformat(),
    }
    job_stats.store_blog_stats(redis_connection(), stats)
    return stats


def add_up_count_changes() -> None:
    """Add the changes that the triggers appended into the running counts, and delete them.

    A change is deleted and read in one statement (``DELETE ... RETURNING``), so that a
    change committed meanwhile is left for the next run rather than lost, and two runs at
    once never add the same change twice. ``FOLD_BATCH`` at a time, after a bulk load.
    """
    figures, tags = Counter(), Counter()
    changes = CountChange.__table__
    batch = select(changes.c.id).limit(FOLD_BATCH).scalar_subquery()
    while rows := db.session.execute(
        delete(changes)
        .where(changes.c.id.in_(batch))
        .returning(changes.c.name, changes.c.tag_id, changes.c.delta)
    ).all():
        for name, tag_id, delta in rows:
            if tag_id is None:
                figures[name] += delta
            else:
                tags[tag_id] += delta
    if figures:
        counts = RunningCount.__table__
        add = upsert(counts).values([{"name": n, "value": d} for n, d in figures.items()])
        db.session.execute(
            add.on_conflict_do_update(
                index_elements=[counts.c.name], set_={"value": counts.c.value + add.excluded.value}
            )
        )
    if changed := [{"tag": tag_id, "delta": d} for tag_id, d in tags.items() if d]:
        table = Tag.__table__
        db.session.execute(
            update(table)
            .where(table.c.id == bindparam("tag"))
            .values(post_count=table.c.post_count + bindparam("delta")),
            changed,
        )


@in_app_context
def trim_dead_jobs() -> dict:
    """The dead-job cap (``blog.dead_jobs``): remove the failed jobs older than
    ``DEAD_JOBS_MAX_AGE`` days, then the oldest beyond ``DEAD_JOBS_MAX``; return how many.

    It needs no database, so it runs before the migrations too. With the failed jobs within
    the cap it reads the failed registries and one field of each of their jobs, a thousand
    per round trip.
    """
    config = current_app.config
    trimmed = dead_jobs.trim(redis_connection(), config["DEAD_JOBS_MAX"], dead_jobs.max_age(config))
    if trimmed.total:
        log.info(
            "dead-job cap: removed %s failed job(s), %s beyond %s and %s older than %s days",
            trimmed.total,
            trimmed.by_count,
            config["DEAD_JOBS_MAX"],
            trimmed.by_age,
            config["DEAD_JOBS_MAX_AGE"],
        )
    return {"by_age": trimmed.by_age, "by_count": trimmed.by_count}
