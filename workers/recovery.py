"""Finding the jobs whose worker died mid-job, and running them again.

A running job is listed in its queue's started registry, under an execution that names its
worker; a live worker renews its key every ``WORKER_HEARTBEAT`` seconds, and the key expires
``DEAD_AFTER_HEARTBEATS`` heartbeats after the last. So a job whose worker key is gone was
abandoned: its process was killed (SIGKILL, out of memory, a platform stopping the dyno)
before it could say how the job ended.

``Recovery.sweep`` finds such jobs and gives each the treatment of a failure that needs no
backoff: a job with retries left goes back to the front of its queue at once (one retry
used); one without is moved to the failed registry, saying why. Every worker supervisor
sweeps every heartbeat, and at once when one of its own processes dies; removing the job
from the started registry comes first and only one sweeper can do it, so a job is never
recovered twice.

It also puts back the jobs a worker took off a queue and died before registering: a worker
serving a single queue parks each job on a list of RQ's for that moment. One still there
``PARKED_PATIENCE`` seconds after a sweep first saw it (the moment lasts a millisecond) goes
back to the front of its queue; it never started, so it uses up nothing.

RQ's own clean-up of these (every 10 minutes, or when something counts a registry) sees a
job only once the job's timeout has passed, and fails a parked job a minute later.
"""

import logging
import time

from redis import Redis
from rq.job import Job, JobStatus

from blog import job_stats, rq_internals
from blog.queues import Queue

log = logging.getLogger("workers.jobs")

# A worker missing this many heartbeats in a row is taken for dead.
DEAD_AFTER_HEARTBEATS = 4
# Seconds a job may stay parked between a worker taking it and starting it, Redis stalls
# included, before it is taken for stranded.
PARKED_PATIENCE = 5


def alive(connection: Redis, worker_names) -> set[str]:
    """The workers among ``worker_names`` that are alive (their key is renewed)."""
    return rq_internals.alive_workers(connection, worker_names)


class Recovery:
    def __init__(self, connection: Redis, queue_names):
        self.connection = connection
        self.queues = {name: Queue(name, connection=connection) for name in queue_names}
        self._parked: dict[tuple[str, str], float] = {}  # (queue, job id) -> first seen

    def sweep(self, dead_workers: set[str] = frozenset()) -> list[str]:
        """Recover the started jobs whose worker is gone (or named in ``dead_workers``), and
        the parked ones; return their ids."""
        entries = rq_internals.started_entries(self.connection, list(self.queues))
        living = alive(self.connection, {worker for *_, worker in entries if worker})
        recovered = []
        for queue_name, entry, job_id, worker in entries:
            if worker in living and worker not in dead_workers:
                continue
            if recover(self.connection, queue_name, entry, job_id, worker):
                recovered.append(job_id)
        return recovered + self._put_back_parked()

    def _put_back_parked(self) -> list[str]:
        now = time.monotonic()
        parked = rq_internals.unregistered_job_ids(self.connection, self.queues.values())
        self._parked = {pair: self._parked.get(pair, now) for pair in parked}
        stranded = [pair for pair, seen in self._parked.items() if now - seen >= PARKED_PATIENCE]
        put_back = []
        for queue_name, job_id in sorted(stranded):
            if rq_internals.put_back_unregistered(self.connection, self.queues[queue_name], job_id):
                log.warning(
                    "job %s: taken off %s by a worker that died before starting it; "
                    "back at the front of the queue",
                    job_id,
                    queue_name,
                )
                put_back.append(job_id)
        return put_back


def recover(
    connection: Redis, queue_name: str, entry: str, job_id: str, worker: str | None
) -> bool:
    """Take the started-registry ``entry`` of a dead worker and requeue or fail its job;
    False if another sweeper (or the job's end) got there first."""
    why = f"its worker {worker or '(unknown)'} died while running it"
    return _settle(connection, queue_name, entry, job_id, worker, why, retry=True)


def fail_running(connection: Redis, queue_name: str, execution, job, worker: str, why: str) -> None:
    """Fail a job that its (live) worker gives up on, with no retry, saying ``why``."""
    _settle(connection, queue_name, execution.composite_key, job.id, worker, why, retry=False)


def _settle(connection, queue_name, entry, job_id, worker, why, retry: bool) -> bool:
    queue = Queue(queue_name, connection=connection)
    if not rq_internals.take_started_entry(connection, queue_name, entry):
        return False
    job = Job.fetch_many([job_id], connection=connection)[0]
    if job is None or job.get_status(refresh=False) != JobStatus.STARTED:
        return False
    with connection.pipeline() as pipeline:
        if retry and job.retries_left:
            job.retries_left -= 1
            queue.enqueue_job(job, pipeline=pipeline, at_front=True)  # first: it starts MULTI
            job.save(pipeline=pipeline)
            outcome = f"back at the front of {queue_name} ({job.retries_left} retries left)"
        else:
            message = f"Abandoned: {why}." if retry else why
            rq_internals.fail_abandoned(job, message, pipeline, worker or "")
            outcome = "failed" if not retry else "failed, no retries left"
        rq_internals.delete_execution(connection, job, entry, pipeline)
        pipeline.execute()
    job_stats.record_job(connection, failed=True)
    if retry:
        log.warning(
            "job %s %s on %s: abandoned (%s); %s", job.id, job.func_name, queue_name, why, outcome
        )
    return True
