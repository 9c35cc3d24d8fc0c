"""Looking after the queues: counts, workers, clearing and retrying; for ``flask jobs`` and the
admin pages."""

from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime

from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import (
    CanceledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    ScheduledJobRegistry,
    StartedJobRegistry,
)
from rq.results import Result

from blog.queues import QUEUE_NAMES, get_queue, redis_connection

REGISTRIES = (
    StartedJobRegistry,
    ScheduledJobRegistry,
    DeferredJobRegistry,
    FailedJobRegistry,
    FinishedJobRegistry,
    CanceledJobRegistry,
)


@dataclass
class QueueStats:
    name: str
    waiting: int
    scheduled: int  # to run later, as enqueued with enqueue_in or enqueue_at
    retrying: int  # to run again later, after a failed attempt
    started: int
    failed: int
    deferred: int
    finished: int
    latency: float  # seconds the oldest waiting job has waited


@dataclass
class WorkerStats:
    name: str
    state: str
    queues: list[str]
    job_id: str | None
    job_func: str | None


def latency(queue: Queue) -> float:
    """How long the job at the head of the queue (the oldest) has been waiting."""
    oldest = queue.get_jobs(0, 0)
    if not oldest or oldest[0].enqueued_at is None:
        return 0.0
    return max((datetime.now(UTC) - oldest[0].enqueued_at).total_seconds(), 0.0)


def scheduled_and_retrying(queue: Queue) -> tuple[int, int]:
    """How many of the queue's jobs wait for a time to run: first, or again after a failure.

    RQ keeps both kinds in its scheduled registry. A job scheduled with ``enqueue_in`` or
    ``enqueue_at`` has never started; one put back there by its ``Retry`` has, so its
    ``started_at`` is set. (RQ's ``Repeat`` also reschedules jobs that ran; this app has none.)
    Only those two fields of each job are read, in one round trip, however many jobs wait.
    """
    job_ids = queue.scheduled_job_registry.get_job_ids()
    with queue.connection.pipeline() as pipe:
        for job_id in job_ids:
            pipe.hmget(Job.key_for(job_id), ["created_at", "started_at"])
        fields = pipe.execute()
    present = [started for created, started in fields if created]  # not expired meanwhile
    retrying = sum(bool(started) for started in present)  # RQ stores "" until a job starts
    return len(present) - retrying, retrying


def queue_stats() -> list[QueueStats]:
    stats = []
    for name in QUEUE_NAMES:
        queue = get_queue(name)
        scheduled, retrying = scheduled_and_retrying(queue)
        stats.append(
            QueueStats(
                name=name,
                waiting=queue.count,
                scheduled=scheduled,
                retrying=retrying,
                started=queue.started_job_registry.count,
                failed=queue.failed_job_registry.count,
                deferred=queue.deferred_job_registry.count,
                finished=queue.finished_job_registry.count,
                latency=latency(queue),
            )
        )
    return stats


def worker_stats() -> list[WorkerStats]:
    stats = []
    for worker in Worker.all(connection=redis_connection()):
        job = worker.get_current_job()
        stats.append(
            WorkerStats(
                name=worker.name,
                state=str(worker.get_state()),
                queues=worker.queue_names(),
                job_id=job.id if job else None,
                job_func=job.func_name if job else None,
            )
        )
    return sorted(stats, key=lambda w: w.name)


def clear_all() -> int:
    """Empty every queue and every job registry; return how many jobs were removed.

    Jobs running right now keep running: stop the workers first for a clean slate.
    """
    connection = redis_connection()
    removed = 0
    for name in QUEUE_NAMES:
        queue = get_queue(name)
        removed += queue.empty()
        for registry_class in REGISTRIES:
            registry = registry_class(name, connection=connection)
            for job_id in registry.get_job_ids(cleanup=False):
                with suppress(NoSuchJobError):  # expired on its own meanwhile
                    Job.fetch(job_id, connection=connection).delete()
                connection.delete(Result.get_key(job_id))
                removed += 1
            connection.delete(registry.key)
    return removed


def requeue_failed() -> int:
    """Put every failed job back on its queue; return how many."""
    count = 0
    for name in QUEUE_NAMES:
        registry = get_queue(name).failed_job_registry
        for job_id in registry.get_job_ids():
            try:
                registry.requeue(job_id)
            except (InvalidJobOperation, NoSuchJobError):
                continue  # expired, or requeued by someone else meanwhile
            count += 1
    return count
