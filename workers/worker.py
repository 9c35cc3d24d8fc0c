"""The RQ worker classes the worker processes run (see ``workers.supervisor`` for the whole).

- ``ThreadWorker``: one of the threads of a worker process (``WORKER_MODE=threads``, the
  default). It is RQ's in-process ``SimpleWorker``, adapted to run beside the others
  (``blog.rq_internals.ThreadWorkerBase``): the process, not the thread, handles signals,
  heartbeats and commands, and a job is stopped by an exception raised in its thread
  (``workers.interrupts``).
- ``ForkWorker``: RQ's ``HerokuWorker``, forking a work-horse per job (``WORKER_MODE=fork``).

Both log one line when a job starts and one when it ends, with its duration and outcome,
and count it for the admin stats page (``blog.job_stats``); they note the last line of a
failed attempt's error in the job's meta, for the retrying jobs page. Every line logged while
a job runs carries its id and function (``blog.logs``): set in the worker before the job
starts, so a forking worker's work-horse inherits them. With tracing on, each job's run is a
span of the trace that enqueued it (``blog.tracing``). A job interrupted because its
worker stops goes back to the front of its queue instead of failing; that counts against it
unless another job caused the stop. They take no jobs from a paused queue
(``flask jobs pause``), start a throttled job no sooner than its throttle allows
(``blog.throttle``), and take none at all once quiet (SIGTSTP, or the admin page's Quiet
button, as Sidekiq's quiet: the running jobs finish, and the worker waits for its SIGTERM).

Everything here uses RQ's public API and the hooks of ``blog.rq_internals``.
"""

import functools
import logging
import secrets
import threading
import time
import traceback

from flask import current_app, has_app_context
from rq.exceptions import InvalidJobOperation, NoSuchJobError, ShutDownImminentException
from rq.job import Job, JobStatus

from blog import job_metrics, job_stats, logs, throttle, tracing
from blog.config import job_rate_limits, read_settings
from blog.queue_admin import PAUSED_KEY, QUIET_KEY, process_of
from blog.queues import LAST_ERROR, Queue
from blog.rq_internals import ForkWorkerBase, ThreadWorkerBase
from workers import interrupts
from workers.recovery import DEAD_AFTER_HEARTBEATS

log = logging.getLogger("workers.jobs")

# A job interrupted this many times by its worker stopping (shutdowns, memory recycles) fails
# instead of going back to its queue: it is most likely what makes the worker stop.
MAX_INTERRUPTIONS = 3
# Seconds a worker process goes on with the paused queues (and quiet order) it last read.
CONTROLS_CHECK = 1
# Characters of a failed attempt's error line kept in its job's meta.
ERROR_LINE_MAX = 300

OUTCOMES = {
    JobStatus.FINISHED: ("finished", ""),
    JobStatus.FAILED: ("failed", ""),
    JobStatus.STOPPED: ("stopped", ""),
    JobStatus.SCHEDULED: ("failed", ", retry scheduled"),
    JobStatus.QUEUED: ("requeued", ""),
}


class JobLog:
    """The app's policy around each job, in the hooks the worker classes call: a log line as
    it starts and one as it ends, the stats page's counts, and what becomes of a job that an
    interruption stopped."""

    queue_class = Queue
    log_result_lifespan = False  # the line per job says what happened
    # Whether the job's outcome is known here, in memory, when it ends; a forking worker's
    # work-horse reports it through Redis.
    outcome_in_memory = False

    def __init__(self, *args, heartbeat: float | None = None, **kwargs):
        if heartbeat is not None:
            kwargs["worker_ttl"] = int(heartbeat * DEAD_AFTER_HEARTBEATS)
        super().__init__(*args, **kwargs)
        self.running: tuple[Job, Queue] | None = None
        self.interruption: BaseException | None = None
        self.quiet = False  # set by the process's SIGTSTP handler, or from Redis (CONTROLS)
        self._started = 0.0
        self._log_token = None
        self.push_exc_handler(self._note_interruption)
        self.push_exc_handler(self._trace_exception)
        self.push_exc_handler(self._note_last_error)

    def queues_to_serve(self, queues):
        if not self.quiet:
            paused, self.quiet = CONTROLS.read(self.connection, process_of(self.name))
        if self.quiet:
            if self.get_state() != "quiet":
                self.set_state("quiet")
            return []
        return [queue for queue in queues if queue.name not in paused]

    def run_at(self, job, queue):
        """A throttled job (``blog.throttle``) waits for its moment."""
        # A worker thread has no app context; a test's in-process worker runs in its app's.
        throttles = (
            current_app.config["JOB_RATE_LIMITS"] if has_app_context() else configured_throttles()
        )
        if not throttles:
            return None
        return throttle.run_at(self.connection, throttles, job)

    def _note_interruption(self, job, exc_type, exc_value, traceback) -> bool:
        """An exception handler (RQ calls it with what the job raised, before it handles the
        failure): remember what actually stopped the job."""
        if isinstance(exc_value, interrupts.WorkerStopping):
            self.interruption = exc_value
        elif isinstance(exc_value, ShutDownImminentException):  # a work-horse's, at a SIGTERM
            self.interruption = interrupts.WorkerStopping()
        return True  # and on to the next handler

    def _trace_exception(self, job, exc_type, exc_value, traceback) -> bool:
        tracing.record_exception(exc_value)
        return True

    def running_job(self, job, queue):
        return tracing.job_span(job, queue.name, exits_after=self.forks)

    def _note_last_error(self, job, exc_type, exc_value, traceback_) -> bool:
        """An exception handler: keep the last line of the error in the job's meta. RQ keeps
        a failure's traceback only once the job fails for good; a retry saves the whole job,
        meta included, so a retrying job shows why it waits."""
        line = traceback.format_exception_only(exc_type, exc_value)[-1].strip()
        job.meta[LAST_ERROR] = line[:ERROR_LINE_MAX]
        return True

    def job_started(self, job, queue):
        self.running = (job, queue)
        self.interruption = None
        self._started = time.monotonic()
        self._log_token = logs.bind(job_id=job.id, job_function=job.func_name)
        log.info("job %s %s on %s: started", job.id, job.func_name, queue.name)

    def job_ended(self, job, queue):
        try:
            self._end(job, queue)
        finally:
            logs.unbind(self._log_token)

    def _end(self, job, queue):
        self.running = None
        status = final_status(job, refresh=not self.outcome_in_memory)
        outcome, note = OUTCOMES.get(status, (str(status), ""))
        duration = time.monotonic() - self._started
        log.info(
            "job %s %s on %s: %s in %.3fs%s",
            job.id,
            job.func_name,
            queue.name,
            outcome,
            duration,
            note,
        )
        failed = status != JobStatus.FINISHED
        with self.connection.pipeline() as pipe:  # the counts and the metrics: one round trip
            job_stats.add_job(pipe, failed=failed)
            job_metrics.add_execution(
                pipe, job.func_name, queue.name, failed, duration, job_metrics.wait_of(job)
            )
            pipe.execute()

    def requeue_interrupted(self, job, queue, execution) -> bool:
        """Put a job that its worker's stop interrupted back at the front of its queue."""
        stop = self.interruption
        if stop is None or job.has_rate_limit:  # a rate-limited job fails and retries as usual
            return False
        if stop.charged and not self.may_requeue_interrupted(job):
            return False
        with self.connection.pipeline() as pipeline:
            queue.enqueue_job(job, pipeline=pipeline, at_front=True)  # first: it starts MULTI
            self.cleanup_execution(job, pipeline=pipeline, execution=execution)
            pipeline.execute()
        why = "its worker stopping" if stop.charged else "a stop that another job caused"
        log.warning(
            "job %s was interrupted by %s; back at the front of %s", job.id, why, queue.name
        )
        return True

    def may_requeue_interrupted(self, job: Job) -> bool:
        """Count one more interruption of ``job`` by its worker stopping; False once that
        happened too often for it to go back to its queue again."""
        interruptions = job.meta.get("interruptions", 0) + 1
        if interruptions >= MAX_INTERRUPTIONS:
            return False
        job.meta["interruptions"] = interruptions
        job.save_meta()
        return True


class Controls:
    """What the admin pages and ``flask jobs`` ask of the workers: the paused queues, and
    whether this process is to be quiet. Read at most once every ``CONTROLS_CHECK`` seconds
    per process, for all its workers, in one round trip."""

    def __init__(self):
        self._lock = threading.Lock()
        self._paused: set[str] = set()
        self._quiet = False
        self._next_read = 0.0

    def read(self, connection, process: str) -> tuple[set[str], bool]:
        with self._lock:
            if time.monotonic() >= self._next_read:
                with connection.pipeline(transaction=False) as pipe:
                    pipe.smembers(PAUSED_KEY)
                    pipe.sismember(QUIET_KEY, process)
                    paused, quiet = pipe.execute()
                self._paused = {name.decode() for name in paused}
                if quiet and not self._quiet:
                    log.info("worker process %s quiet: no more jobs; waiting for SIGTERM", process)
                self._quiet = bool(quiet)
                self._next_read = time.monotonic() + CONTROLS_CHECK
            return self._paused, self._quiet


CONTROLS = Controls()


@functools.cache
def configured_throttles() -> dict:
    """The throttles the environment sets (``JOB_RATE_LIMITS``, ``MAIL_RATE_LIMIT``), read
    once per process, as the app's config has them."""
    return job_rate_limits(read_settings())


def final_status(job: Job, refresh: bool) -> JobStatus:
    try:
        return job.get_status(refresh=refresh)
    except (InvalidJobOperation, NoSuchJobError):
        return JobStatus.FINISHED  # and deleted at once, as its result_ttl is 0


class ThreadWorker(JobLog, ThreadWorkerBase):
    """One thread of a worker process, running one job at a time.

    ``ThreadWorkerBase`` leaves out the Redis round trips a thread does not need: nine a job
    where RQ's SimpleWorker makes twenty (``tests/test_rq_internals.py`` counts them). For
    short jobs, RQ's bookkeeping costs as much as the job.
    """

    death_penalty_class = interrupts.Deadline
    outcome_in_memory = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.thread_id: int | None = None

    def run(self, burst: bool = False) -> None:
        """The thread's body: RQ's work loop, until stopped."""
        self.thread_id = threading.get_ident()
        self.work(burst=burst, logging_level="WARNING")

    def interrupt(self, reason: type[interrupts.JobInterrupted]) -> bool:
        """Stop the job this thread runs, raising ``reason`` in it."""
        if self.thread_id is None:
            return False
        return interrupts.interrupt(self.thread_id, reason)

    def stop_running_job(self) -> None:
        self.interrupt(interrupts.JobStopped)


class ForkWorker(JobLog, ForkWorkerBase):
    """RQ's forking worker: a work-horse per job. On SIGTERM the running job gets
    ``WORKER_SHUTDOWN_GRACE`` seconds, then is interrupted and put back on its queue."""

    def __init__(self, *args, heartbeat: float, shutdown_grace: int, **kwargs):
        # RQ renews the worker's key and its running job's every job_monitoring_interval;
        # its dequeue timeout (worker_ttl - 15, at least 1 s) is the longest a signal that
        # lands as it starts to wait may wait to be handled.
        super().__init__(
            *args, heartbeat=heartbeat, job_monitoring_interval=max(1, round(heartbeat)), **kwargs
        )
        self.imminent_shutdown_delay = shutdown_grace


def process_prefix(hostname: str, pid: int, boot: str) -> str:
    """What the names of one worker process's workers start with: its host and pid (so the
    supervisor knows whose jobs to recover when a process dies), and a token of its own, as
    a container restarted in place has the same hostname and the same pids as before."""
    return f"{hostname}.{pid}.{boot}."


def new_boot_token() -> str:
    return secrets.token_hex(3)
