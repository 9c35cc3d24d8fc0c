"""Everything the app does below RQ's public API: the one module to read when RQ changes.

The rest of the app uses RQ's documented classes and functions only (``Queue``, ``Job``,
``Retry``, the registries, ``Worker.all`` ...); ``tests/test_rq_internals.py`` fails if any other
module imports a private name of RQ's, spells one of its Redis keys, or overrides one of its
methods. What is here, and why each piece cannot use the public API:

- **Keys and fields** RQ keeps in Redis: the records of a job (for ``flask jobs clear``), two
  fields of many job hashes in one round trip (for the stats page), the due times of all the
  scheduled jobs of a queue (for the jobs admin), the entries of the started registries and
  the worker names their executions record (for the recovery), the last heartbeat of many
  workers, and the jobs a worker took off a queue but never registered.
- **The scheduler's pieces:** RQ's lock script and key (so that a stock ``rq worker
  --with-scheduler`` takes turns with ours), and moving a due job onto its queue.
- **Failing an abandoned job** the way RQ's own clean-up does.
- **Failed jobs by the thousand** (the dead-job cap): their ``failure_ttl`` in one round trip,
  and deleting them without fetching each.
- **A recurring job run by hand**, added to the history ``rq cron`` keeps of its runs.
- **Two worker classes** that adapt RQ's workers to the app's runtime (``workers.worker``
  builds on them), and a queue class that keeps a scheduled job's exact due time. Each
  override says which RQ behaviour it changes. The app's policy (logging, stats, what to do
  with an interrupted job, when a throttled job may start) lives in the subclasses, in the
  hooks these call.

To upgrade RQ: change the pin in ``requirements.in`` (``make lock``), run
``pytest tests/test_rq_internals.py`` (it starts by saying which RQ this module was written
against), read RQ's changes to the modules named below, then run the whole suite and
``make bench``. ``RQ_WRITTEN_AGAINST`` is the version this module was checked against.
"""

import contextlib
import time
from datetime import datetime

import rq
from redis import Redis
from rq.defaults import (
    DEFAULT_CRON_JOB_HISTORY_LIMIT,
    DEFAULT_CRON_JOB_HISTORY_TTL,
    DEFAULT_FAILURE_TTL,
)
from rq.executions import Execution, ExecutionRegistry
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.results import Result
from rq.scheduler import RQScheduler
from rq.scripts import ACQUIRE_OR_REFRESH_LOCK_SCRIPT, release_lock
from rq.utils import now, parse_composite_key
from rq.worker import HerokuWorker, SimpleWorker, Worker

RQ_WRITTEN_AGAINST = "3.0.0"

PREFIX = Job.redis_job_namespace_prefix.split(":")[0]  # "rq", or RQ_KEY_PREFIX

# Every record RQ keeps about a job, besides the queues and registries listing it: the job
# hash (and its dependents set), its results stream, and its executions (a set per job, and
# a hash per execution, which a worker's heartbeat writes to).            (rq/job.py,
# rq/results.py, rq/executions.py, rq/intermediate_queue.py)
JOB_RECORD_PATTERNS = (
    Job.redis_job_namespace_prefix + "*",  # <prefix>:job:<id>, <prefix>:job:<id>:dependents
    Result.get_key("*"),
    f"{PREFIX}:executions:*",
    f"{PREFIX}:execution:*",
    f"{PREFIX}:queue:*:intermediate:first_seen:*",
    f"{PREFIX}:worker:*:executions",  # what each worker runs now
)


# What RQ's keys hold, by the prefix of their names; a longer prefix before a shorter one it
# starts with.
KEY_KINDS = tuple(
    (f"{PREFIX}:{name}", kind)
    for name, kind in (
        ("queue:", "queues"),  # a list of waiting job ids per queue
        ("job:", "jobs"),  # a hash per job: function, arguments, status, timestamps
        ("results:", "job results"),  # a stream per job: return values, tracebacks
        ("execution", "executions"),  # the jobs running now
        ("wip:", "started registries"),
        ("scheduled:", "scheduled registries"),  # scheduled and retrying jobs
        ("failed:", "failed registries"),
        ("finished:", "finished registries"),
        ("deferred:", "deferred registries"),
        ("canceled:", "canceled registries"),
        ("ready:", "ready registries"),  # dependents whose dependencies are done
        ("rl", "rate limits"),
        ("worker", "workers"),
        ("scheduler", "scheduler"),
        ("cron", "cron"),
        ("", "other rq"),
    )
)


# --- Job hashes ------------------------------------------------------------------------------


def created_and_started(connection: Redis, job_ids: list[str]) -> list[tuple[bytes, bytes]]:
    """Two fields of each job's hash, in one round trip (``Job.fetch_many`` would load every
    job whole, and fail on a hash that a heartbeat wrote after the job was deleted).

    ``created_at`` is empty if the job is gone; ``started_at`` is empty until it starts.
    """
    with connection.pipeline() as pipe:
        for job_id in job_ids:
            pipe.hmget(Job.key_for(job_id), ["created_at", "started_at"])
        return pipe.execute()


def due_times(registry: ScheduledJobRegistry) -> dict[str, float]:
    """Each scheduled job's due time (a Unix timestamp), in one round trip: RQ's registry is a
    sorted set scored by it, and ``get_scheduled_time`` reads one job per round trip."""
    entries = registry.connection.zrange(registry.key, 0, -1, withscores=True)
    return {job_id.decode(): score for job_id, score in entries}


def job_ids_with_a_hash(connection: Redis) -> set[str]:
    """The ids of every job hash in this Redis database, wherever (or whether) it is listed."""
    prefix = Job.redis_job_namespace_prefix
    ids = set()
    for key in connection.scan_iter(match=prefix + "*", count=1000):
        rest = key.decode()[len(prefix) :]
        if rest and ":" not in rest:  # not <prefix>:job:<id>:dependents
            ids.add(rest)
    return ids


def delete_job_records(connection: Redis) -> int:
    """Delete every record of every job, whatever state it was left in; return how many keys.

    ``Job.delete`` cannot do this for a job whose worker was killed: it fetches each
    execution, and fails on one whose hash expired or that a late heartbeat recreated.
    """
    deleted = 0
    for pattern in JOB_RECORD_PATTERNS:
        batch = []
        for key in connection.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) == 1000:
                deleted += connection.delete(*batch)
                batch = []
        if batch:
            deleted += connection.delete(*batch)
    return deleted


# --- Failed jobs -----------------------------------------------------------------------------


def failure_ttls(connection: Redis, job_ids: list[str]) -> list[int | None]:
    """Each job's ``failure_ttl`` in one round trip, RQ's default (a year) where the job was
    enqueued without one; None where its hash is gone."""
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.hmget(Job.key_for(job_id), ["created_at", "failure_ttl"])
        replies = pipe.execute()
    return [
        None if not created else (int(ttl) if ttl else DEFAULT_FAILURE_TTL)
        for created, ttl in replies
    ]


def delete_failed_jobs(connection: Redis, registry, job_ids: list[str]) -> list[str]:
    """Take ``job_ids`` off the failed ``registry`` and delete their records, in two round
    trips; the ids actually removed.

    ``Job.delete`` takes a fetch and several round trips per job, too slow for the thousands
    the dead-job cap may remove at once. A job requeued meanwhile is no longer in the
    registry: its ``ZREM`` fails, and its records are left alone. (Its execution records went
    when it failed; its results expire with it, and are deleted here too.)
    """
    with connection.pipeline(transaction=False) as pipe:
        for job_id in job_ids:
            pipe.zrem(registry.key, job_id)
        removed = [job_id for job_id, done in zip(job_ids, pipe.execute(), strict=True) if done]
    if removed:
        with connection.pipeline(transaction=False) as pipe:
            for job_id in removed:
                job = Job(job_id, connection=connection)
                pipe.delete(
                    job.key,
                    job.dependents_key,
                    job.dependencies_key,
                    Result.get_key(job_id),
                    ExecutionRegistry(job_id, connection=connection).key,
                )
            pipe.execute()
    return removed


# --- Recurring jobs ------------------------------------------------------------------------


def record_cron_run(connection: Redis, cron_job, job: Job) -> None:
    """Add ``job`` to the history ``rq cron`` keeps of ``cron_job``'s runs, as
    ``CronJob.enqueue`` does (rq/cron.py), so that a run enqueued from the admin page shows
    among the clock's."""
    key = cron_job.job_history_key
    with connection.pipeline() as pipe:
        pipe.zadd(key, {job.id: job.enqueued_at.timestamp()})
        pipe.zremrangebyrank(key, 0, -(DEFAULT_CRON_JOB_HISTORY_LIMIT + 1))
        pipe.expire(key, DEFAULT_CRON_JOB_HISTORY_TTL)
        pipe.execute()


# --- What the recovery reads -----------------------------------------------------------------


def started_entries(connection: Redis, queue_names) -> list[tuple[str, str, str, str | None]]:
    """Every running job, as ``(queue name, registry entry, job id, worker name)``, in two
    round trips.

    A started registry lists ``<job id>:<execution id>`` entries; the execution's hash names
    the worker running it (rq/registry.py, rq/executions.py).
    """
    with connection.pipeline(transaction=False) as pipeline:
        for name in queue_names:
            pipeline.zrange(StartedJobRegistry(name, connection=connection).key, 0, -1)
        per_queue = pipeline.execute()
    entries = [
        (name, entry.decode())
        for name, members in zip(queue_names, per_queue, strict=True)
        for entry in members
    ]
    if not entries:
        return []
    executions = [Execution.from_composite_key(entry, connection) for _, entry in entries]
    with connection.pipeline(transaction=False) as pipeline:
        for execution in executions:
            pipeline.hget(execution.key, "worker_name")
        names = [name.decode() if name else None for name in pipeline.execute()]
    return [
        (queue, entry, execution.job_id, name)
        for (queue, entry), execution, name in zip(entries, executions, names, strict=True)
    ]


def alive_workers(connection: Redis, worker_names) -> set[str]:
    """The workers among ``worker_names`` that are alive, in one round trip: their key is
    there (it expires when they stop renewing it) and has no death recorded (RQ keeps a dead
    worker's key for a minute, marked)."""
    names = list(worker_names)
    with connection.pipeline(transaction=False) as pipeline:
        for name in names:
            pipeline.hmget(Worker.redis_worker_namespace_prefix + name, ["birth", "death"])
        replies = pipeline.execute()
    return {
        name for name, (birth, death) in zip(names, replies, strict=True) if birth and not death
    }


def take_started_entry(connection: Redis, queue_name: str, entry: str) -> bool:
    """Remove ``entry`` from its queue's started registry; False if it was not there (another
    sweeper, or the job's own end, got there first)."""
    return bool(connection.zrem(StartedJobRegistry(queue_name, connection=connection).key, entry))


def delete_execution(connection: Redis, job: Job, entry: str, pipeline) -> None:
    job_id, execution_id = parse_composite_key(entry)
    Execution(execution_id, job_id, connection=connection).delete(job, pipeline)


def fail_abandoned(job: Job, message: str, pipeline, worker_name: str = "") -> None:
    """Fail ``job`` as RQ's clean-up of abandoned jobs does: its status, the failed registry,
    and a failure result, here naming the worker (rq/job_lifecycle.py)."""
    job.set_status(JobStatus.FAILED, pipeline=pipeline)
    job._handle_failure(message, pipeline, worker_name=worker_name)


def unregistered_job_ids(connection: Redis, queues) -> set[tuple[str, str]]:
    """The jobs a worker took off one of ``queues`` but has not registered as started (yet),
    as ``(queue name, job id)``, in one round trip.

    A worker serving one queue moves each job onto the queue's intermediate list before it
    registers it (rq/intermediate_queue.py); one killed in between leaves it there. A worker
    serving several queues pops jobs directly and leaves nothing here.
    """
    with connection.pipeline(transaction=False) as pipeline:
        for queue in queues:
            pipeline.lrange(queue.intermediate_queue_key, 0, -1)
        replies = pipeline.execute()
    return {
        (queue.name, job_id.decode())
        for queue, job_ids in zip(queues, replies, strict=True)
        for job_id in job_ids
    }


_PUT_BACK = """
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 1 then
    redis.call('LPUSH', KEYS[2], ARGV[1])
    return 1
end
return 0
"""


def put_back_unregistered(connection: Redis, queue, job_id: str) -> bool:
    """Move a job left on ``queue``'s intermediate list back to the front of the queue, at
    once (a script); False if it is no longer there."""
    script = connection.register_script(_PUT_BACK)
    return bool(script(keys=[queue.intermediate_queue_key, queue.key], args=[job_id]))


# --- The scheduler ---------------------------------------------------------------------------

LOCK_TAKEN = 0  # what RQ's lock script answers when another scheduler holds the lock


def scheduler_lock_key(queue_name: str) -> str:
    """RQ's scheduler lock for a queue (rq/scheduler.py)."""
    return RQScheduler.get_locking_key(queue_name)


def register_lock_script(connection: Redis):
    """RQ's take-or-renew lock script: 0 when another owner holds it (rq/scripts.py)."""
    return connection.register_script(ACQUIRE_OR_REFRESH_LOCK_SCRIPT)


def release_scheduler_lock(connection: Redis, queue_name: str, owner: str) -> None:
    release_lock(connection, scheduler_lock_key(queue_name), owner)


def enqueue_due_jobs(connection: Redis, queue, job_ids: list[str]) -> None:
    """Move due jobs from ``queue``'s scheduled registry onto the queue, as RQ's scheduler
    does: the ordinary ones in one transaction, a rate-limited one in a transaction of its
    own (rq/scheduler.py)."""
    registry = ScheduledJobRegistry(queue=queue)
    jobs = Job.fetch_many(job_ids, connection=connection)
    limited = [job for job in jobs if job is not None and job.has_rate_limit]
    with connection.pipeline() as pipeline:
        for job_id, job in zip(job_ids, jobs, strict=True):
            if job is None or not job.has_rate_limit:
                pipeline.zrem(registry.key, job_id)
            if job is not None and not job.has_rate_limit:
                queue._enqueue_job(job, pipeline=pipeline, at_front=job.should_enqueue_at_front())
        pipeline.execute()
    for job in limited:
        with connection.pipeline() as pipeline:
            pipeline.zrem(registry.key, job.id)
            queue._enqueue_rate_limited_job(
                job, pipeline=pipeline, at_front=job.should_enqueue_at_front()
            )
            pipeline.execute()


# --- Classes -------------------------------------------------------------------------------


class ExactTimeQueue(rq.Queue):
    """RQ's queue, keeping a scheduled job's due time to the microsecond."""

    def schedule_job(self, job: Job, datetime, pipeline=None, unique: bool = False) -> Job:
        # RQ stores the due time rounded down to the second (ScheduledJobRegistry.schedule),
        # so a scheduler reading it back would run the job up to a second early.
        job = super().schedule_job(job, datetime, pipeline=pipeline, unique=unique)
        connection = pipeline if pipeline is not None else self.connection
        key = ScheduledJobRegistry(queue=self).key
        connection.zadd(key, {job.id: datetime.timestamp()}, xx=True)
        return job


def stop_taking_jobs(worker) -> None:
    """Make ``worker`` stop once its current job (if any) ends: what RQ's SIGTERM handler
    does, for a worker that gets no signals (a thread)."""
    worker._stop_requested = True


class HookedWorker:
    """What both worker classes add to RQ's: hooks around each job, a say in which queues it
    takes jobs from, in when a job it took may start, and in what becomes of a job stopped by
    an interruption, and a stop that needs no signal. ``workers.worker`` fills the hooks in."""

    # Seconds an idle worker waits for a job before it looks again at whether it should stop
    # and which queues it serves.
    stop_check = 1
    # Whether each job runs in a work-horse forked for it.
    forks = False

    def queues_to_serve(self, queues: list) -> list:
        """The queues, of ``queues``, to take a job from now (none: wait)."""
        return queues

    def job_started(self, job: Job, queue) -> None:
        pass

    def job_ended(self, job: Job, queue) -> None:
        pass

    def requeue_interrupted(self, job: Job, queue, execution) -> bool:
        """Put an interrupted job back on its queue instead of failing it; True if done."""
        return False

    def running_job(self, job: Job, queue):
        """A context manager around the run of ``job`` itself, where it runs: this thread,
        or the work-horse a forking worker made for it (``forks`` is then true)."""
        return contextlib.nullcontext()

    def run_at(self, job: Job, queue) -> datetime | None:
        """When a job just taken off ``queue`` may start: None for now; else it is set aside
        in the scheduled registry until then, and the worker takes another."""
        return None

    def set_aside(self, job: Job, queue, moment: datetime) -> None:
        # Scheduled (its meta saved with it), and off the intermediate list a worker serving
        # one queue moves each job onto as it takes it, in one transaction: a worker killed
        # in between leaves the job in one place, never in both.
        with self.connection.pipeline() as pipeline:
            queue.schedule_job(job, moment, pipeline=pipeline)
            pipeline.lrem(queue.intermediate_queue_key, 1, job.id)
            pipeline.execute()

    def execute_job(self, job, queue):
        # RQ's extension point for running a job; the hooks run in the worker itself (never
        # in a forked work-horse), so they run even when a work-horse is killed.
        self.job_started(job, queue)
        try:
            super().execute_job(job, queue)
        finally:
            self.job_ended(job, queue)

    def perform_job(self, job, queue, execution):
        # Where the job's function is called: RQ's SimpleWorker calls this in the worker,
        # its forking Worker in the work-horse, which leaves with os._exit right after.
        with self.running_job(job, queue):
            return super().perform_job(job, queue, execution)

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        # RQ blocks on all its queues for the whole dequeue timeout and notices a stop only
        # from a signal (which a thread never gets); this waits in short steps, and looks
        # between them for a stop, `rq suspend`, and which queues to serve (paused, quiet).
        # A job taken that may not start yet (run_at) is set aside, and it looks again.
        while True:
            self._ordered_queues = self.queues_to_serve(self.queues)
            if timeout is None:  # burst: do not wait
                if not self._ordered_queues:
                    return None
                result = super().dequeue_job_and_maintain_ttl(None, max_idle_time)
                if result is None:
                    return None
            else:
                self.check_for_suspension(burst=False)  # returns once resumed, or stopping
                if self._stop_requested:
                    return None
                if not self._ordered_queues:
                    time.sleep(self.stop_check)
                    continue
                result = super().dequeue_job_and_maintain_ttl(
                    self.stop_check, max_idle_time=self.stop_check
                )
                if result is None:
                    continue
            job, queue = result
            moment = self.run_at(job, queue)
            if moment is None:
                return result
            self.set_aside(job, queue, moment)

    def handle_job_failure(
        self, job, queue, started_job_registry=None, exc_string="", execution=None
    ):
        # RQ fails (or retries, using up a retry) every job that raised; a job interrupted
        # because its worker stops goes back to its queue instead, when the hook says so.
        if self.requeue_interrupted(job, queue, execution):
            return
        super().handle_job_failure(job, queue, started_job_registry, exc_string, execution)


class ThreadWorkerBase(HookedWorker, SimpleWorker):
    """RQ's in-process worker, made to run as one of several threads of a process.

    The process (``workers.process``) handles signals and commands for all its threads and
    renews their keys and executions; RQ's per-job Redis writes that the process makes
    instead are left out. A job is stopped by an exception raised in its thread.
    """

    # Seconds between two looks at whether the workers are suspended (`rq suspend`).
    suspension_check = 1

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._next_suspension_check = 0.0

    def _install_signal_handlers(self):
        # RQ installs SIGTERM/SIGINT handlers in work(); only a main thread may.
        pass

    def subscribe(self):
        # RQ subscribes each worker to its command channel, with a thread and a connection;
        # the process makes one subscription for all its threads.
        pass

    def heartbeat(self, timeout=None, pipeline=None):
        # RQ renews the worker key on its own three times a job; the process renews it every
        # heartbeat, and it goes along here only with writes RQ makes anyway.
        if pipeline is not None:
            super().heartbeat(self.worker_ttl, pipeline)

    def check_for_suspension(self, burst):
        # RQ asks Redis before every job; once a second is soon enough to notice `rq suspend`.
        if time.monotonic() >= self._next_suspension_check:
            self._next_suspension_check = time.monotonic() + self.suspension_check
            super().check_for_suspension(burst)

    def set_state(self, state, pipeline=None):
        # RQ writes "idle" after each job and again before it waits for the next one.
        if pipeline is not None or state != self.get_state():
            super().set_state(state, pipeline)

    def handle_execution_ended(self, job, queue, heartbeat_ttl):
        # RQ writes the job's last heartbeat here, for a work-horse's parent to read; the
        # process keeps each running job's execution alive instead.
        job.ended_at = now()

    def kill_horse(self, sig=None):
        # RQ's stop-job command kills the work-horse; a thread has none, so it interrupts the
        # job instead (the subclass raises an exception in the thread).
        self.stop_running_job()

    def stop_running_job(self) -> None:
        raise NotImplementedError


class ForkWorkerBase(HookedWorker, HerokuWorker):
    """RQ's forking worker for platforms (SIGTERM: the work-horse gets a grace period, then
    ``ShutDownImminentException``), with the hooks."""

    forks = True
