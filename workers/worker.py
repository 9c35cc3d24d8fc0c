"""The RQ worker classes the worker processes run (see ``workers.supervisor`` for the whole).

- ``ThreadWorker``: one of the threads of a worker process (``WORKER_MODE=threads``, the
  default). It is RQ's in-process ``SimpleWorker``, registered under a name of its own, made
  safe to run beside the others: the process, not the thread, handles signals, heartbeats and
  commands, and a job is stopped by an exception raised in its thread (``workers.interrupts``).
- ``ForkWorker``: RQ's ``HerokuWorker``, forking a work-horse per job (``WORKER_MODE=fork``).

All of them log one line when a job starts and one when it ends, with its duration and outcome,
and count it for the admin stats page (``blog.job_stats``); a job interrupted because its
worker stops goes back to the front of its queue instead of failing.
"""

import logging
import threading
import time

from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus
from rq.utils import now
from rq.worker import HerokuWorker, SimpleWorker

from blog import job_stats
from blog.extensions import db
from blog.queues import Queue
from workers import interrupts, process_app
from workers.recovery import DEAD_AFTER_HEARTBEATS

log = logging.getLogger("workers.jobs")

# A job interrupted this many times by its worker stopping (shutdowns, memory recycles) fails
# instead of going back to its queue: it is most likely what makes the worker stop.
MAX_INTERRUPTIONS = 3
# Seconds an idle thread waits for a job before it looks whether it should stop.
STOP_CHECK = 1
# Seconds between two looks at whether the workers are suspended (`rq suspend`).
SUSPENSION_CHECK = 1


class JobLog:
    """One log line as each job starts and one as it ends, and the stats page's counts.
    ``execute_job`` runs in the worker itself, not in a work-horse, so both happen even when a
    work-horse crashes or is killed."""

    queue_class = Queue
    log_result_lifespan = False  # the line per job says what happened
    # Whether the job's outcome is known here, in memory, when it ends; a forking worker's
    # work-horse reports it through Redis.
    outcome_in_memory = False

    def execute_job(self, job, queue):
        started = time.monotonic()
        log.info("job %s %s on %s: started", job.id, job.func_name, queue.name)
        try:
            super().execute_job(job, queue)
        finally:
            status = final_status(job, refresh=not self.outcome_in_memory)
            outcome, note = OUTCOMES.get(status, (str(status), ""))
            log.info(
                "job %s %s on %s: %s in %.3fs%s",
                job.id,
                job.func_name,
                queue.name,
                outcome,
                time.monotonic() - started,
                note,
            )
            job_stats.record_job(self.connection, failed=status != JobStatus.FINISHED)

    def may_requeue_interrupted(self, job: Job) -> bool:
        """Count one more interruption of ``job`` by its worker stopping; False once that
        happened too often for it to go back to its queue again."""
        interruptions = job.meta.get("interruptions", 0) + 1
        if interruptions >= MAX_INTERRUPTIONS:
            return False
        job.meta["interruptions"] = interruptions
        job.save_meta()
        return True


def log_requeued(job: Job, queue) -> None:
    log.warning(
        "job %s was interrupted by its worker stopping; back at the front of %s", job.id, queue.name
    )


OUTCOMES = {
    JobStatus.FINISHED: ("finished", ""),
    JobStatus.FAILED: ("failed", ""),
    JobStatus.STOPPED: ("stopped", ""),
    JobStatus.SCHEDULED: ("failed", ", retry scheduled"),
    JobStatus.QUEUED: ("requeued", ""),
}


def final_status(job: Job, refresh: bool) -> JobStatus:
    try:
        return job.get_status(refresh=refresh)
    except (InvalidJobOperation, NoSuchJobError):
        return JobStatus.FINISHED  # and deleted at once, as its result_ttl is 0


class ThreadWorker(JobLog, SimpleWorker):
    """One thread of a worker process, running one job at a time.

    Besides the overrides that make it safe beside other threads, it leaves out the Redis
    round trips a thread does not need (each override says why): ten a job where RQ's
    SimpleWorker makes eighteen. For short jobs, RQ's bookkeeping costs as much as the job.
    """

    death_penalty_class = interrupts.Deadline
    outcome_in_memory = True

    def __init__(self, *args, heartbeat: float, **kwargs):
        super().__init__(*args, worker_ttl=int(heartbeat * DEAD_AFTER_HEARTBEATS), **kwargs)
        self.thread_id: int | None = None
        self.done = False
        self.running: tuple[Job, Queue] | None = None
        self._interruption: type[interrupts.JobInterrupted] | None = None
        self._next_suspension_check = 0.0

    def work(self, *args, **kwargs):
        self.thread_id = threading.get_ident()
        try:
            return super().work(*args, **kwargs)
        finally:
            self.done = True

    # The process does these for all its threads (see workers.process).
    def _install_signal_handlers(self):
        pass

    def subscribe(self):
        pass

    def unsubscribe(self):
        pass

    def procline(self, message):
        pass

    @property
    def should_run_maintenance_tasks(self) -> bool:
        # RQ's clean-up every 10 minutes, per worker: the supervisor's recovery sweep does the
        # part that matters, every heartbeat, once per dyno.
        return False

    def heartbeat(self, timeout=None, pipeline=None):
        # RQ renews the key four times per job, and by a job's whole timeout while it runs:
        # then a dead worker would look alive (and busy) for minutes. The process's monitor
        # renews it every heartbeat instead; here only as part of a write RQ makes anyway.
        if pipeline is not None:
            super().heartbeat(self.worker_ttl, pipeline)

    def check_for_suspension(self, burst):
        # RQ asks Redis before every job; once a second is soon enough to notice `rq suspend`.
        if time.monotonic() >= self._next_suspension_check:
            self._next_suspension_check = time.monotonic() + SUSPENSION_CHECK
            super().check_for_suspension(burst)

    def set_state(self, state, pipeline=None):
        # RQ writes "idle" after each job and again before waiting for the next one.
        if pipeline is not None or state != self._state:
            super().set_state(state, pipeline)

    def handle_execution_ended(self, job, queue, heartbeat_ttl):
        # RQ writes the job's last heartbeat here, for a work-horse's parent to see; the
        # process's monitor keeps each running job's execution alive instead.
        job.ended_at = now()

    def dequeue_job_and_maintain_ttl(self, timeout, max_idle_time=None):
        """Wait for a job as RQ does, but in short waits, so that a stop or `rq suspend` is
        noticed by an idle thread too (RQ looks only between jobs)."""
        if timeout is None:  # burst: do not wait
            return super().dequeue_job_and_maintain_ttl(None, max_idle_time)
        while True:
            self.check_for_suspension(burst=False)  # returns once resumed, or stopping
            if self._stop_requested:
                return None
            result = super().dequeue_job_and_maintain_ttl(STOP_CHECK, max_idle_time=STOP_CHECK)
            if result is not None:
                return result

    def execute_job(self, job, queue):
        self.running = (job, queue)
        self._interruption = None
        try:
            super().execute_job(job, queue)
        finally:
            self.running = None

    def interrupt(self, reason: type[interrupts.JobInterrupted]) -> bool:
        """Stop the job this thread runs, raising ``reason`` in it."""
        if self.thread_id is None:
            return False
        self._interruption = reason
        return interrupts.interrupt(self.thread_id, reason)

    def kill_horse(self, sig=None):
        # RQ's stop-job command ends here (after setting _stopped_job_id): no horse to kill.
        self.interrupt(interrupts.JobStopped)

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string=""):
        if self._interruption is interrupts.WorkerStopping and self.may_requeue_interrupted(job):
            with self.connection.pipeline() as pipeline:
                queue.enqueue_job(job, pipeline=pipeline, at_front=True)  # first: see recovery
                self.cleanup_execution(job, pipeline=pipeline)
                pipeline.execute()
            log_requeued(job, queue)
            return
        super().handle_job_failure(job, queue, started_job_registry, exc_string)


class ForkWorker(JobLog, HerokuWorker):
    """RQ's forking worker: a work-horse per job. On SIGTERM the running job gets
    ``WORKER_SHUTDOWN_GRACE`` seconds, then is interrupted and put back on its queue."""

    def __init__(self, *args, heartbeat: float, shutdown_grace: int, **kwargs):
        super().__init__(*args, worker_ttl=int(heartbeat * DEAD_AFTER_HEARTBEATS), **kwargs)
        self.job_monitoring_interval = max(1, round(heartbeat))
        self.imminent_shutdown_delay = shutdown_grace
        self.app = process_app()
        self._interrupted_by_shutdown = False

    @property
    def dequeue_timeout(self) -> int:
        # A platform signals every process at once; a signal landing as the worker starts to
        # wait is handled when the wait ends, which must come well before the SIGKILL.
        return self.job_monitoring_interval

    def heartbeat(self, timeout=None, pipeline=None):
        super().heartbeat(self.worker_ttl, pipeline)

    def main_work_horse(self, job, queue):
        # The work-horse is a fork: it shares the parent's open sockets. Two processes talking
        # over one PostgreSQL connection corrupt each other's conversation, so the horse drops
        # the inherited pool (without closing the parent's sockets) and opens its own.
        with self.app.app_context():
            db.engine.dispose(close=False)
        super().main_work_horse(job, queue)

    def request_force_stop_sigrtmin(self, signum, frame):
        self._interrupted_by_shutdown = True
        super().request_force_stop_sigrtmin(signum, frame)

    def handle_job_failure(self, job, queue, started_job_registry=None, exc_string=""):
        super().handle_job_failure(job, queue, started_job_registry, exc_string)
        if (
            self._interrupted_by_shutdown
            and job.get_status(refresh=True) == JobStatus.FAILED
            and self.may_requeue_interrupted(job)
        ):
            job.requeue(at_front=True)
            log_requeued(job, queue)


def worker_name(hostname: str, pid: int, number: int) -> str:
    """Names that tell which process a worker thread belongs to (the supervisor needs that
    when a process dies)."""
    return f"{hostname}.{pid}.{number}"


def process_prefix(hostname: str, pid: int) -> str:
    return f"{hostname}.{pid}."
