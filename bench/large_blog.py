"""A large blog for the recurring jobs' rows, written in bulk: a year of posts by older
users, a day of signups whose reminders wait in Redis, every email sent, every post tagged.

Nothing is stranded: what ``requeue_stranded_work`` and ``refresh_stats`` cost here is what
they cost on a healthy production database of that size, every minute. Rows go in a chunk
at a time, never through the ORM one object at a time: with ``COPY`` on PostgreSQL, as one
executemany on SQLite. They fire the counting triggers as any write does (``bench.recurring``
adds those changes up before it measures). The reminders go to Redis through RQ's
``enqueue_at``, a pipeline a chunk.
"""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import islice

from flask import current_app
from sqlalchemy import delete, func, insert, select

from blog.extensions import db
from blog.models import AUTHOR, TAGGER, Email, Post, PostTag, Tag, TaggingState, User, utcnow
from blog.queues import get_queue, redis_connection
from workers.mailers import reminder_job_id, send_signup_reminder

CHUNK = 5_000

SENTENCES = (
    "Background jobs keep slow work out of the request.",
    "A message queue between the web app and the worker absorbs bursts of traffic.",
    "Unit testing a job means calling the function with an id.",
    "Rate limiting protects the tagging API from a backlog of retries.",
    "Continuous integration runs the whole suite on every push.",
    "Every job should be idempotent, since a worker may run it twice.",
    "The scheduler moves a job to its queue when it is due.",
    "Postgres and Redis run side by side on the same small machine.",
)


@dataclass(frozen=True)
class Size:
    posts: int = 1_000_000
    recent_users: int = 100_000  # signed up in the last day: their reminders wait in Redis
    authors: int = 10_000  # signed up long ago, and wrote the posts
    tags: int = 500
    tags_per_post: int = 3

    def scaled(self, scale: float) -> "Size":
        return Size(
            posts=max(10, round(self.posts * scale)),
            recent_users=max(10, round(self.recent_users * scale)),
            authors=max(1, round(self.authors * scale)),
            tags=self.tags,
            tags_per_post=self.tags_per_post,
        )


def write(size: Size) -> None:
    """Fill the empty, migrated database of the current app, and Redis with the reminders."""
    now = utcnow()
    authors = _users(size.authors, "author", now - timedelta(days=400), timedelta(days=360))
    recent = _users(
        size.recent_users,
        "new",
        now - timedelta(seconds=current_app.config["SIGNUP_REMINDER_DELAY"] - 600),
        timedelta(days=1) - timedelta(minutes=20),
    )
    _insert(User, authors)
    _insert(User, recent)
    users = db.session.execute(select(User.id, User.email, User.created_at)).all()
    _insert(Email, (_welcome(*user) for user in users))
    first_author = db.session.scalar(select(func.min(User.id)))
    _insert(Tag, ({"name": f"topic-{n}"} for n in range(size.tags)))
    first_tag = db.session.scalar(select(func.min(Tag.id)))
    _insert(Post, _posts(size, first_author, now))
    first_post = db.session.scalar(select(func.min(Post.id)))
    _insert(PostTag, _post_tags(size, first_post, first_tag))
    db.session.commit()
    _schedule_reminders(
        db.session.execute(select(User.id, User.created_at).where(User.email.like("new%"))).all()
    )


def a_minute_of_signups(size: Size) -> None:
    """What the recurring jobs find a minute after their last run: that minute's signups
    (``recent_users`` a day), old enough for ``requeue_stranded_work`` to check and not
    checked yet, each with its reminder scheduled; and the changes to the counts that they
    made, for ``refresh_stats`` to add up.

    The runs measured follow each other within milliseconds, not a minute apart, so each
    minute's signups replace the last one's, and take their place just before the mark of
    how far the last run checked, which moves back a minute.
    """
    from workers.maintenance import reminders_checked_until, set_reminders_checked_until

    checked_until = reminders_checked_until()
    start = checked_until - timedelta(minutes=1)
    db.session.execute(delete(User).where(User.email.like("minute-%")))
    count = max(1, size.recent_users // (24 * 60))
    _insert(User, _users(count, "minute-", start, timedelta(minutes=1)))
    db.session.commit()
    _schedule_reminders(
        db.session.execute(
            select(User.id, User.created_at).where(User.email.like("minute-%"))
        ).all()
    )
    set_reminders_checked_until(start)


def _users(count: int, kind: str, first: datetime, span: timedelta) -> Iterator[dict]:
    for n in range(count):
        yield {
            "email": f"{kind}{n}@bench.invalid",
            "password_hash": "!",  # no password logs in
            "is_admin": False,
            "created_at": first + span * (n / count),
        }


def _welcome(user_id: int, address: str, created_at: datetime) -> dict:
    return {
        "user_id": user_id,
        "kind": "welcome",
        "to_address": address,
        "subject": "Welcome to Flask Background Jobs",
        "text_body": "Welcome!",
        "html_body": "<p>Welcome!</p>",
        "message_id": f"<welcome-{user_id}@bench.invalid>",
        "created_at": created_at,
        "sent_at": created_at + timedelta(seconds=2),
    }


def _posts(size: Size, first_author: int, now: datetime) -> Iterator[dict]:
    """Posts of 2 to 6 sentences (45 words on average), a year of them, all tagged."""
    for n in range(size.posts):
        created_at = now - timedelta(days=365) * (1 - n / size.posts)
        body = " ".join(SENTENCES[(n + i) % len(SENTENCES)] for i in range(2 + n % 5))
        yield {
            "author_id": first_author + n % size.authors,
            "title": f"Post {n}",
            "body": body,
            "word_count": len(body.split()),
            "created_at": created_at,
            "updated_at": created_at,
            "content_version": 1,
            "tagging_state": TaggingState.DONE,
            "tagging_changed_at": created_at + timedelta(seconds=3),
        }


def _post_tags(size: Size, first_post: int, first_tag: int) -> Iterator[dict]:
    """``tags_per_post`` tags a post, one from each band of the tags, the first of a band the
    most used (so that the top ten mean something)."""
    band = size.tags // size.tags_per_post
    for n in range(size.posts):
        for i in range(size.tags_per_post):
            spread = (n * 2654435761 + i * 40503) % 2**32 / 2**32  # the same every run
            yield {
                "post_id": first_post + n,
                "tag_id": first_tag + i * band + int(band * spread**2),
                "source": AUTHOR if i == 0 else TAGGER,
            }


def _insert(model, rows: Iterator[dict]) -> None:
    """Write ``rows`` a chunk at a time: with ``COPY`` on PostgreSQL, which takes a third of
    the time of multi-row ``INSERT``s there; as one executemany a chunk on SQLite."""
    rows = iter(rows)
    postgres = db.engine.dialect.name == "postgresql"
    while chunk := list(islice(rows, CHUNK * 20 if postgres else CHUNK)):
        if postgres:
            _copy(model.__table__.name, chunk)
        else:
            db.session.execute(insert(model), chunk)


def _copy(table: str, rows: list[dict]) -> None:
    text = io.StringIO()
    csv.writer(text).writerows([_copy_value(value) for value in row.values()] for row in rows)
    text.seek(0)
    columns = ", ".join(rows[0])
    cursor = db.session.connection().connection.cursor()
    cursor.copy_expert(f"COPY {table} ({columns}) FROM STDIN WITH (FORMAT csv)", text)


def _copy_value(value):
    """A value as ``COPY`` reads it from CSV: an empty field is NULL."""
    if value is None:
        return ""
    return value.isoformat() if isinstance(value, datetime) else value


def _schedule_reminders(users: list[tuple[int, datetime]]) -> None:
    """Each user's reminder, scheduled as a signup schedules it: a day after it."""
    queue = get_queue("mailers")
    delay = timedelta(seconds=current_app.config["SIGNUP_REMINDER_DELAY"])
    users = iter(users)
    while chunk := list(islice(users, CHUNK)):
        with redis_connection().pipeline() as pipe:
            for user_id, created_at in chunk:
                queue.enqueue_at(
                    created_at + delay,
                    send_signup_reminder,
                    user_id,
                    job_id=reminder_job_id(user_id),
                    pipeline=pipe,
                )
            pipe.execute()
