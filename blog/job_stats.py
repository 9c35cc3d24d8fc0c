"""Figures about the jobs, kept in Redis: written by the worker and jobs, read by the admin pages.

Totals of the jobs the workers have run, and of those that failed.

RQ forgets a finished job after its ``result_ttl`` and a worker's own counts die with it, so
the app keeps its own, as Sidekiq does: two all-time totals, and the same per minute for the
chart (those keys expire once the chart no longer shows them). The worker adds to them as each
job ends (``workers.worker``).

"Processed" counts executions, whatever their outcome; "failed" counts the executions that did
not finish (the job raised, timed out or was killed). A job retried twice and then successful
adds 3 to processed and 2 to failed.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from redis import Redis
from redis.client import Pipeline

PROCESSED = "processed"
FAILED = "failed"
KEY_PREFIX = "blog:jobs"
# The chart shows the last hour; a minute's counts are kept a little longer than that.
CHART_MINUTES = 60
MINUTE_KEY_TTL = timedelta(hours=2)


@dataclass
class Minute:
    start: datetime
    processed: int
    failed: int


def total_key(outcome: str) -> str:
    return f"{KEY_PREFIX}:{outcome}"


def minute_key(outcome: str, moment: datetime) -> str:
    return f"{KEY_PREFIX}:{outcome}:{moment.astimezone(UTC):%Y-%m-%dT%H:%M}"


def record_job(connection: Redis, failed: bool, at: datetime | None = None) -> None:
    """Count one execution of a job, failed or not, in one round trip."""
    with connection.pipeline() as pipe:
        add_job(pipe, failed, at)
        pipe.execute()


def add_job(pipe: Pipeline, failed: bool, at: datetime | None = None) -> None:
    """Add the commands that count one execution to ``pipe``, for a caller that sends them
    with others (the worker, with the job's metrics)."""
    at = at or datetime.now(UTC)
    outcomes = (PROCESSED, FAILED) if failed else (PROCESSED,)
    for outcome in outcomes:
        pipe.incr(total_key(outcome))
        pipe.incr(minute_key(outcome, at))
        pipe.expire(minute_key(outcome, at), MINUTE_KEY_TTL)


def totals(connection: Redis) -> dict[str, int]:
    processed, failed = connection.mget(total_key(PROCESSED), total_key(FAILED))
    return {PROCESSED: int(processed or 0), FAILED: int(failed or 0)}


def reset(connection: Redis) -> dict[str, int]:
    """Set the totals and the per-minute counts back to zero, as Sidekiq's "reset" does;
    return the totals as they were. Jobs, queues and RQ's registries are left alone."""
    before = totals(connection)
    keys = list(connection.scan_iter(match=f"{KEY_PREFIX}:*", count=500))
    if keys:
        connection.delete(*keys)
    return before


def last_hour(connection: Redis, now: datetime | None = None) -> list[Minute]:
    """The counts of each of the last 60 minutes, oldest first, this minute included."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    starts = [now - timedelta(minutes=n) for n in reversed(range(CHART_MINUTES))]
    keys = [minute_key(outcome, start) for outcome in (PROCESSED, FAILED) for start in starts]
    values = [int(value or 0) for value in connection.mget(keys)]
    processed, failed = values[:CHART_MINUTES], values[CHART_MINUTES:]
    return [Minute(*row) for row in zip(starts, processed, failed, strict=True)]


BLOG_STATS_KEY = "blog:stats"
# How far requeue_stranded_work has checked the signups' reminders (workers/maintenance.py).
REMINDERS_CHECKED_KEY = "blog:reminders-checked-until"


def store_blog_stats(connection: Redis, stats: dict) -> None:
    """Keep the blog's figures that ``refresh_stats`` worked out, for the stats page."""
    connection.set(BLOG_STATS_KEY, json.dumps(stats))


def cached_blog_stats(connection: Redis) -> dict | None:
    """What ``refresh_stats`` computed last, or None if it has not run yet."""
    raw = connection.get(BLOG_STATS_KEY)
    return json.loads(raw) if raw else None
