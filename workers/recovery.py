"""Finding the jobs whose worker died mid-job, and running them again.

A running job is listed in its queue's started registry (``rq:wip:<queue>``), under an
execution that names its worker; a live worker renews its key (``rq:worker:<name>``) every
``WORKER_HEARTBEAT`` seconds, and the key expires ``DEAD_AFTER_HEARTBEATS`` heartbeats after
the last. So a job whose worker key is gone was abandoned: its process was killed (SIGKILL,
out of memory, a platform stopping the dyno) before it could say how the job ended.

``sweep`` finds such jobs and gives each the treatment of a failure that needs no backoff: a
job with retries left goes back to the front of its queue at once (one retry used); one without
is moved to the failed registry, saying why. Every worker supervisor sweeps every heartbeat,
and at once when one of its own processes dies; removing the job from the started registry
comes first and only one sweeper can do it, so a job is never recovered twice.

RQ's own clean-up of that registry (every 10 minutes, or when something counts it) only sees
a job once the job's timeout has passed, far later than this.
"""

import logging

from redis import Redis
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from rq.utils import parse_composite_key
from rq.worker import Worker

from blog import job_stats
from blog.queues import Queue

log = logging.getLogger("workers.jobs")

# A worker missing this many heartbeats in a row is taken for dead.
DEAD_AFTER_HEARTBEATS = 4


def sweep(connection: Redis, queue_names, dead_workers: set[str] = frozenset()) -> list[str]:
    """Recover the started jobs whose worker is gone (or named in ``dead_workers``); return
    their ids."""
    entries = _started_entries(connection, queue_names)
    if not entries:
        return []
    with connection.pipeline(transaction=False) as pipeline:
        for _, entry in entries:
            pipeline.hget(Execution.from_composite_key(entry, connection).key, "worker_name")
        names = [name.decode() if name else None for name in pipeline.execute()]
    named = [name for name in names if name]
    with connection.pipeline(transaction=False) as pipeline:
        for name in named:
            pipeline.exists(Worker.redis_worker_namespace_prefix + name)
        alive = {name for name, exists in zip(named, pipeline.execute(), strict=True) if exists}
    recovered = []
    for (queue_name, entry), name in zip(entries, names, strict=True):
        if name in alive and name not in dead_workers:
            continue
        job_id = recover(connection, queue_name, entry, worker=name)
        if job_id:
            recovered.append(job_id)
    return recovered


def _started_entries(connection: Redis, queue_names) -> list[tuple[str, str]]:
    with connection.pipeline(transaction=False) as pipeline:
        for name in queue_names:
            pipeline.zrange(StartedJobRegistry(name, connection=connection).key, 0, -1)
        per_queue = pipeline.execute()
    return [
        (name, entry.decode())
        for name, entries in zip(queue_names, per_queue, strict=True)
        for entry in entries
    ]


def recover(connection: Redis, queue_name: str, entry: str, worker: str | None) -> str | None:
    """Take the started-registry ``entry`` (``<job id>:<execution id>``) of a dead worker and
    requeue or fail its job; the job's id, or None if another sweeper (or the job's end) got
    there first."""
    queue = Queue(queue_name, connection=connection)
    if not connection.zrem(queue.started_job_registry.key, entry):
        return None
    job_id, execution_id = parse_composite_key(entry)
    job = Job.fetch_many([job_id], connection=connection)[0]
    if job is None or job.get_status(refresh=False) != JobStatus.STARTED:
        return None
    why = f"its worker {worker or '(unknown)'} died while running it"
    with connection.pipeline() as pipeline:
        if job.retries_left:
            job.retries_left -= 1
            # First: with a pipeline, RQ's enqueue_job starts the transaction itself.
            queue.enqueue_job(job, pipeline=pipeline, at_front=True)
            job.save(pipeline=pipeline)
            outcome = f"back at the front of {queue_name} ({job.retries_left} retries left)"
        else:
            job.set_status(JobStatus.FAILED, pipeline=pipeline)
            # As RQ's own clean-up of abandoned jobs does: the failed registry and a result.
            job._handle_failure(f"Abandoned: {why}.", pipeline, worker_name=worker or "")
            outcome = "failed, no retries left"
        Execution(execution_id, job_id, connection=connection).delete(job, pipeline)
        pipeline.execute()
    job_stats.record_job(connection, failed=True)
    log.warning(
        "job %s %s on %s: abandoned (%s); %s", job.id, job.func_name, queue_name, why, outcome
    )
    return job.id
