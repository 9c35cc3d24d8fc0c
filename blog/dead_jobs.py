"""Failed jobs ("dead" in Sidekiq's words): the cap on how many are kept and for how long, and
the listing, requeueing and deleting that ``/admin/dead`` offers.

RQ keeps a failed job for its ``failure_ttl`` (a year unless the job says otherwise) and keeps
any number of them, so a burst of failures can fill a small Redis plan. Sidekiq keeps at most
10,000 dead jobs for at most 180 days; so does this app (``DEAD_JOBS_MAX``,
``DEAD_JOBS_MAX_AGE``):

- every job the app enqueues carries ``failure_ttl`` = the maximum age (``blog.queues``,
  ``workers/cron.py``), so RQ itself drops it at that age, its records expiring with it;
- ``trim_dead_jobs`` (``workers.maintenance``, every minute) removes the failed jobs older
  than that which came with a longer TTL (failed before the cap, or enqueued by another
  client), then the oldest beyond the count, a thousand per round trip, and counts what it
  removed for the stats page and ``flask jobs stats``.

"Oldest" for the count is the order RQ would expire them in, as its failed registry is sorted
by expiry time: for jobs with the same ``failure_ttl`` (all of the app's), the order they
failed. Reading each job's failure time instead would cost a round trip per thousand jobs for
the whole registry, every minute.
"""

import heapq
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import FailedJobRegistry

from blog import rq_internals
from blog.queues import QUEUE_NAMES, Queue, get_queue

# What the cap removed: when it last removed any, how many then (by age and by count), and
# how many in all.
TRIMMED_KEY = "blog:dead-jobs:trimmed"
# Job ids read, or removed, in one round trip.
BATCH = 1000


def max_age(config) -> timedelta:
    return timedelta(days=config["DEAD_JOBS_MAX_AGE"])


def registries(connection) -> list[FailedJobRegistry]:
    return [Queue(name, connection=connection).failed_job_registry for name in QUEUE_NAMES]


@dataclass
class Trimmed:
    by_age: int = 0
    by_count: int = 0

    @property
    def total(self) -> int:
        return self.by_age + self.by_count


def trim(connection, max_jobs: int, oldest: timedelta, now: datetime | None = None) -> Trimmed:
    """Remove the failed jobs older than ``oldest``, then the oldest beyond ``max_jobs``; count
    what was removed in Redis. RQ's own clean-up of expired entries runs first."""
    now = now or datetime.now(UTC)
    failed = registries(connection)
    for registry in failed:
        registry.cleanup(now.timestamp())
    trimmed = Trimmed(
        by_age=sum(trim_by_age(registry, (now - oldest).timestamp()) for registry in failed)
    )
    trimmed.by_count = trim_by_count(connection, failed, max_jobs)
    if trimmed.total:
        record(connection, trimmed, now)
    return trimmed


def trim_by_age(registry: FailedJobRegistry, cutoff: float) -> int:
    """Remove the jobs of ``registry`` that failed before ``cutoff`` (a timestamp).

    RQ scores a failed job ``failed at + failure_ttl``, so a job's failure time is its score
    less its TTL. A job with a negative TTL asked to be kept for ever, and is left to the
    count. A registry entry whose job hash is gone has nothing to keep, and goes too.
    """
    connection = registry.connection
    removed = 0
    start = 0
    while entries := connection.zrange(registry.key, start, start + BATCH - 1, withscores=True):
        job_ids = [job_id.decode() for job_id, _ in entries]
        ttls = rq_internals.failure_ttls(connection, job_ids)
        too_old, gone = [], []
        for job_id, (_, score), ttl in zip(job_ids, entries, ttls, strict=True):
            if ttl is None:
                gone.append(job_id)
            elif ttl >= 0 and score - ttl < cutoff:
                too_old.append(job_id)
        removed += len(rq_internals.delete_failed_jobs(connection, registry, too_old))
        rq_internals.delete_failed_jobs(connection, registry, gone)
        start += len(entries) - len(too_old) - len(gone)
    return removed


def trim_by_count(connection, failed: list[FailedJobRegistry], max_jobs: int) -> int:
    """Remove the oldest failed jobs, of every queue, beyond ``max_jobs``."""
    with connection.pipeline(transaction=False) as pipe:
        for registry in failed:
            pipe.zcard(registry.key)
        excess = sum(pipe.execute()) - max_jobs
    removed = 0
    while excess > 0:
        batch = min(BATCH, excess)
        with connection.pipeline(transaction=False) as pipe:
            for registry in failed:
                pipe.zrange(registry.key, 0, batch - 1, withscores=True)
            lowest = pipe.execute()
        # The ``batch`` lowest scores of all the registries together, oldest first.
        merged = heapq.nsmallest(
            batch,
            (
                (score, registry, job_id.decode())
                for registry, entries in zip(failed, lowest, strict=True)
                for job_id, score in entries
            ),
            key=lambda entry: entry[0],
        )
        done = 0
        for registry in failed:
            ids = [job_id for _, owner, job_id in merged if owner is registry]
            done += len(rq_internals.delete_failed_jobs(connection, registry, ids))
        if not done:  # requeued or deleted by someone else meanwhile: count again next time
            break
        removed += done
        excess -= done
    return removed


def record(connection, trimmed: Trimmed, now: datetime) -> None:
    with connection.pipeline() as pipe:
        pipe.hset(
            TRIMMED_KEY,
            mapping={
                "at": now.isoformat(),
                "by_age": trimmed.by_age,
                "by_count": trimmed.by_count,
            },
        )
        pipe.hincrby(TRIMMED_KEY, "total", trimmed.total)
        pipe.execute()


@dataclass
class LastTrim:
    at: datetime
    by_age: int
    by_count: int
    total: int  # removed by the cap since Redis was last emptied

    @property
    def removed(self) -> int:
        return self.by_age + self.by_count

    def describe(self) -> str:
        """What the stats page and ``flask jobs stats`` say."""
        reasons = []
        if self.by_count:
            reasons.append(f"{self.by_count:,} beyond the count")
        if self.by_age:
            reasons.append(f"{self.by_age:,} too old")
        return (
            f"The dead-job cap last removed {self.removed:,} failed job(s) "
            f"({' and '.join(reasons)}) at {self.at:%Y-%m-%d %H:%M} UTC; "
            f"{self.total:,} in all."
        )


def last_trim(connection) -> LastTrim | None:
    """When the cap last removed failed jobs, and how many; None if it never has."""
    fields = {
        key.decode(): value.decode() for key, value in connection.hgetall(TRIMMED_KEY).items()
    }
    if "at" not in fields:
        return None
    return LastTrim(
        at=datetime.fromisoformat(fields["at"]),
        by_age=int(fields.get("by_age", 0)),
        by_count=int(fields.get("by_count", 0)),
        total=int(fields.get("total", 0)),
    )


# --- The /admin/dead page ---------------------------------------------------------------------


@dataclass
class DeadJob:
    id: str
    queue: str
    func_name: str
    args: str  # as Python would write the call's arguments; the template escapes it
    error: str  # the last line of the traceback
    failed_at: datetime | None


def newest_first(connection) -> list[tuple[str, str]]:
    """Every failed job as ``(queue, job id)``, the most recent first (by RQ's expiry score)."""
    entries = []
    for name in QUEUE_NAMES:
        registry = get_queue(name).failed_job_registry
        for job_id, score in connection.zrange(registry.key, 0, -1, withscores=True):
            entries.append((score, name, job_id.decode()))
    entries.sort(reverse=True)
    return [(name, job_id) for _, name, job_id in entries]


def describe(jobs: list[tuple[str, str]], connection) -> list[DeadJob]:
    """The jobs of one page, read in one round trip (and one more per job, for its error)."""
    fetched = Job.fetch_many([job_id for _, job_id in jobs], connection=connection)
    shown = []
    for (queue, job_id), job in zip(jobs, fetched, strict=True):
        if job is None:
            continue  # expired or deleted since the list was read
        shown.append(
            DeadJob(
                id=job_id,
                queue=queue,
                func_name=job.func_name,
                args=call_arguments(job),
                error=error_line(job),
                failed_at=job.ended_at,
            )
        )
    return shown


def call_arguments(job: Job) -> str:
    try:
        args, kwargs = job.args, job.kwargs
    except Exception:  # a job whose arguments cannot be loaded (say, code gone) is still listed
        return "(arguments that cannot be read)"
    parts = [repr(arg) for arg in args] + [f"{key}={value!r}" for key, value in kwargs.items()]
    return ", ".join(parts)


def error_line(job: Job) -> str:
    """The last line of the job's traceback: the exception and its message."""
    result = job.latest_result()
    text = (result.exc_string if result is not None else None) or job.exc_info or ""
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


def requeue(jobs: list[tuple[str, str]]) -> int:
    """Put the failed jobs back on their queues; how many were (the rest were requeued,
    deleted or expired meanwhile)."""
    count = 0
    for queue, job_id in jobs:
        try:
            get_queue(queue).failed_job_registry.requeue(job_id)
        except (InvalidJobOperation, NoSuchJobError):
            continue
        count += 1
    return count


def delete(jobs: list[tuple[str, str]], connection) -> int:
    """Delete the failed jobs and their records; how many were still there to delete."""
    count = 0
    for name in QUEUE_NAMES:
        ids = [job_id for queue, job_id in jobs if queue == name]
        registry = get_queue(name).failed_job_registry
        for start in range(0, len(ids), BATCH):
            count += len(
                rq_internals.delete_failed_jobs(connection, registry, ids[start : start + BATCH])
            )
    return count
