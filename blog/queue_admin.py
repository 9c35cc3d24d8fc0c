"""Looking after the queues: counts, workers, clearing and retrying; for ``flask jobs`` and the
admin pages."""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job
from rq.registry import BaseRegistry

from blog import rq_internals
from blog.queues import QUEUE_NAMES, check_queue_name, get_queue, redis_connection

# The queues the workers take no jobs from for now (a Redis set of names): Sidekiq's queue
# pause, which RQ does not have. A paused queue still accepts jobs.
PAUSED_KEY = "blog:paused-queues"


def pause(name: str) -> bool:
    """Pause queue ``name``: every worker stops taking its jobs within two seconds (a job
    running now finishes). False if it was paused already."""
    check_queue_name(name)
    return bool(redis_connection().sadd(PAUSED_KEY, name))


def resume(name: str) -> bool:
    """Let the workers take queue ``name``'s jobs again; False if it was not paused."""
    check_queue_name(name)
    return bool(redis_connection().srem(PAUSED_KEY, name))


def paused_queues(connection) -> set[str]:
    return {name.decode() for name in connection.smembers(PAUSED_KEY)}


# The worker processes told to be quiet from the admin page (a Redis set of the prefix their
# workers' names start with, ``workers.worker.process_prefix``): each takes no more jobs
# within two seconds, finishes those it runs, and waits for its SIGTERM, as after a SIGTSTP.
# Through Redis, since the page and the process are seldom on one machine.
QUIET_KEY = "blog:quiet-processes"


def process_of(worker_name: str) -> str:
    """The worker process a worker belongs to: its name up to and with its last dot ("" for
    a worker not started by ``python -m workers``, whose names have none)."""
    return worker_name[: worker_name.rfind(".") + 1]


def quiet(process: str) -> bool:
    """Tell worker process ``process`` (a prefix of its workers' names) to take no more jobs.
    False if it was quiet already; ValueError if no worker of it is running."""
    connection = redis_connection()
    live = {process_of(worker.name) for worker in Worker.all(connection=connection)}
    if not process or process not in live:
        raise ValueError(f"no worker process {process.rstrip('.')!r} is running")
    with connection.pipeline() as pipe:
        # The marks of processes gone meanwhile go too (the supervisor forgets its own).
        for gone in {name.decode() for name in connection.smembers(QUIET_KEY)} - live:
            pipe.srem(QUIET_KEY, gone)
        pipe.sadd(QUIET_KEY, process)
        return bool(pipe.execute()[-1])


def quiet_processes(connection) -> set[str]:
    return {name.decode() for name in connection.smembers(QUIET_KEY)}


def registries(queue: Queue) -> dict[str, BaseRegistry]:
    """RQ's registries of a queue's jobs, by the name ``flask jobs clear`` reports them under."""
    return {
        "started": queue.started_job_registry,
        "scheduled": queue.scheduled_job_registry,
        "deferred": queue.deferred_job_registry,
        "failed": queue.failed_job_registry,
        "finished": queue.finished_job_registry,
        "canceled": queue.canceled_job_registry,
    }


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
    paused: bool = False  # the workers take none of its jobs (flask jobs pause)


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
    """
    job_ids = queue.scheduled_job_registry.get_job_ids()
    fields = rq_internals.created_and_started(queue.connection, job_ids)
    present = [started for created, started in fields if created]  # not expired meanwhile
    retrying = sum(bool(started) for started in present)
    return len(present) - retrying, retrying


def queue_stats() -> list[QueueStats]:
    stats = []
    paused = paused_queues(redis_connection())
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
                paused=name in paused,
            )
        )
    return stats


def busy(workers: list[WorkerStats]) -> int:
    return sum(worker.state == "busy" for worker in workers)


def running_job(worker: Worker) -> Job | None:
    """The job ``worker`` is running, or None: also when its records cannot be read back.

    RQ finds a worker's job through the execution record it keeps for it. ``clear_all``
    deletes the records of a job that is still running, and the worker's next heartbeat
    writes one field of its execution back: reading that, RQ 3.0 raises KeyError; reading a
    job whose hash is gone, NoSuchJobError.
    """
    try:
        return worker.get_current_job()
    except (KeyError, NoSuchJobError):
        return None


def worker_stats() -> list[WorkerStats]:
    stats = []
    for worker in Worker.all(connection=redis_connection()):
        job = running_job(worker)
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


@dataclass
class Cleared:
    """What ``clear_all`` removed: jobs by where they were listed, and Redis keys in all."""

    jobs: Counter
    keys: int

    @property
    def total(self) -> int:
        return sum(self.jobs.values())


def clear_all() -> Cleared:
    """Empty every queue and every job registry, and delete every job's records.

    Works whatever state the records are in, also those a killed worker left half written:
    it deletes by key and never loads a job (see ``blog.rq_internals``). A job counts once, under
    the first place it is listed in; "unlisted" are job hashes in no queue or registry. Jobs
    running right now keep running: stop the workers first for a clean slate.
    """
    connection = redis_connection()
    seen: set[str] = set()
    jobs: Counter = Counter()

    def count(place: str, job_ids: list[str]) -> None:
        new = set(job_ids) - seen
        jobs[place] += len(new)
        seen.update(new)

    keys = []
    for name in QUEUE_NAMES:
        queue = get_queue(name)
        count("waiting", queue.get_job_ids())
        # Taken off the queue by a worker that has not registered it as started yet (or died).
        count("taken", queue.intermediate_queue.get_job_ids())
        keys += [queue.key, queue.intermediate_queue_key]
        for place, registry in registries(queue).items():
            count(place, registry.get_job_ids(cleanup=False))
            keys.append(registry.key)
    count("unlisted", list(rq_internals.job_ids_with_a_hash(connection)))
    deleted = connection.delete(*keys) + rq_internals.delete_job_records(connection)
    return Cleared(+jobs, deleted)


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


@dataclass
class ProcessStats:
    """A worker process of ``python -m workers`` and its workers (threads, or one forking
    worker), as the workers page lists them."""

    prefix: str  # what its workers' names start with: host.pid.token.
    workers: list[WorkerStats]
    quiet_asked: bool  # told to be quiet from the admin page

    @property
    def name(self) -> str:
        return self.prefix.rstrip(".")

    @property
    def busy(self) -> int:
        return busy(self.workers)

    @property
    def state(self) -> str:
        """busy, idle, quiet (takes no jobs), or quieting (told to, not all its workers yet)."""
        if all(worker.state == "quiet" for worker in self.workers):
            return "quiet"
        if self.quiet_asked:
            return "quieting"
        return "busy" if self.busy else "idle"


def worker_processes() -> list[ProcessStats]:
    """The worker processes of ``python -m workers``, by name; workers started otherwise (a
    plain ``rq worker``) are left out, as they cannot be quieted from here."""
    by_process: dict[str, list[WorkerStats]] = {}
    for worker in worker_stats():
        if prefix := process_of(worker.name):
            by_process.setdefault(prefix, []).append(worker)
    asked = quiet_processes(redis_connection())
    return [
        ProcessStats(prefix, workers, prefix in asked)
        for prefix, workers in sorted(by_process.items())
    ]
