"""The recurring jobs as ``rq cron`` runs them (``workers/cron.py``, the clock process): each
one's schedule, its last runs and their outcomes, its next run; and running one now.

All of it is RQ's public API. The schedule comes from ``workers/cron.py`` itself, loaded as
``rq cron`` loads it; the last and next enqueue times from the clock's own record in Redis
(``CronScheduler.all``, renewed each time it enqueues); the runs from the history RQ keeps of
the jobs each cron job enqueued (``CronJob.get_job_ids``: the last thousand, newest first).
"""

import functools
from dataclasses import dataclass
from datetime import datetime

from rq.cron import CronJob, CronScheduler
from rq.job import Job

from blog import rq_internals
from blog.queues import RQ_OPTIONS, TAGS, enqueue

CONFIG = "workers/cron.py"
# Runs shown per recurring job: the last, and the outcomes of a few before it.
HISTORY = 10


@functools.cache
def cron_jobs(connection) -> tuple[CronJob, ...]:
    """The recurring jobs ``workers/cron.py`` declares, loaded once per process (they change
    with a deploy only)."""
    scheduler = CronScheduler(connection=connection)
    scheduler.load_config_from_file(CONFIG)
    return tuple(scheduler.get_jobs())


@dataclass
class Run:
    job_id: str
    status: str  # queued, started, finished, failed ...; "expired" once RQ dropped its record
    enqueued_at: datetime | None
    ended_at: datetime | None


@dataclass
class RecurringState:
    name: str
    queue: str
    schedule: str  # "every 60 s", or the cron expression
    runs: list[Run]  # newest first
    latest_enqueue: datetime | None  # from the clock: None while no clock runs
    next_enqueue: datetime | None

    @property
    def last(self) -> Run | None:
        return self.runs[0] if self.runs else None

    def outcomes(self) -> dict[str, int]:
        """How the runs shown ended, by status."""
        counts: dict[str, int] = {}
        for run in self.runs:
            counts[run.status] = counts.get(run.status, 0) + 1
        return counts


def schedule_of(job: CronJob) -> str:
    return f"every {job.interval} s" if job.interval else f"cron {job.cron}"


def clock_running(connection) -> bool:
    return bool(CronScheduler.all(connection))


def clock_times(connection) -> dict[str, CronJob]:
    """The running clock's record of each cron job, by name: its last and next enqueue."""
    schedulers = CronScheduler.all(connection)
    return {job.name: job for scheduler in schedulers for job in scheduler.get_jobs()}


def runs(connection, job: CronJob) -> list[Run]:
    ids = job.get_job_ids(connection, 0, HISTORY - 1)
    shown = []
    for job_id, found in zip(ids, Job.fetch_many(ids, connection=connection), strict=True):
        if found is None:  # a finished run is kept for its result_ttl, 500 s by default
            shown.append(Run(job_id, "expired", None, None))
        else:
            status = found.get_status(refresh=False)
            shown.append(Run(job_id, status.value, found.enqueued_at, found.ended_at))
    return shown


def states(connection) -> list[RecurringState]:
    live = clock_times(connection)
    shown = []
    for job in cron_jobs(connection):
        clock = live.get(job.name)
        shown.append(
            RecurringState(
                name=job.name,
                queue=job.queue_name,
                schedule=schedule_of(job),
                runs=runs(connection, job),
                latest_enqueue=clock.latest_enqueue_time if clock else None,
                next_enqueue=clock.next_enqueue_time if clock else None,
            )
        )
    return shown


def run_now(connection, name: str) -> Job | None:
    """Enqueue the recurring job ``name`` now, as the clock would (same function, arguments,
    queue, options and tags), through the app's checked enqueue, and add it to the job's history;
    None if there is none of that name. The clock's own schedule is unchanged."""
    cron_job = next((job for job in cron_jobs(connection) if job.name == name), None)
    if cron_job is None:
        return None
    options = {key: value for key, value in cron_job.job_options.items() if key in RQ_OPTIONS}
    tags = (cron_job.job_options.get("meta") or {}).get(TAGS, ())
    job = enqueue(
        cron_job.func,
        *cron_job.args,
        queue=cron_job.queue_name,
        kwargs=cron_job.kwargs,
        tags=tuple(tags),
        **options,
    )
    if isinstance(job, Job):  # not a test's fake or inline job
        rq_internals.record_cron_run(connection, cron_job, job)
    return job
