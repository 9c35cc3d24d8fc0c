"""The worker class the Procfile runs: ``rq worker -w workers.worker.Worker``.

It is RQ's ``HerokuWorker`` (fork a work-horse per job; on SIGTERM let the running job finish,
but interrupt it after ``imminent_shutdown_delay`` seconds so the process is gone before a
platform's 30 s grace period ends), plus five things this app needs:

- one Flask app per worker process, made before the first fork, so each work-horse inherits
  it instead of building its own;
- fresh database connections in every work-horse (see ``main_work_horse``);
- one log line when a job starts and one when it ends, with its duration and outcome;
- the processed and failed totals of the admin stats page (see ``blog.admin.counters``);
- a job interrupted by a shutdown goes back to the front of its queue instead of failing.
"""

import logging
import os
import time

from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import JobStatus
from rq.worker import HerokuWorker, SimpleWorker

from blog.admin import counters
from blog.extensions import db
from workers import process_app

log = logging.getLogger("workers.jobs")


class JobLogging:
    """Log a line as each job starts and ends. ``execute_job`` runs in the worker process
    itself, so the end line is written even when the work-horse crashes or is killed."""

    def execute_job(self, job, queue):
        started = time.monotonic()
        log.info("job %s %s on %s: started", job.id, job.func_name, queue.name)
        try:
            super().execute_job(job, queue)
        finally:
            log.info(
                "job %s %s on %s: %s in %.3fs",
                job.id,
                job.func_name,
                queue.name,
                job_outcome(job),
                time.monotonic() - started,
            )


class JobCounting:
    """Count every job run, and every failed one, for the admin stats page. Like the log
    line, this runs in the worker process, so a crashed or killed work-horse counts too."""

    def execute_job(self, job, queue):
        try:
            super().execute_job(job, queue)
        finally:
            counters.record_job(self.connection, failed=not job_finished(job))


def job_finished(job) -> bool:
    try:
        return job.get_status(refresh=True) == JobStatus.FINISHED
    except (InvalidJobOperation, NoSuchJobError):
        return True  # finished, and deleted at once because its result_ttl is 0


def job_outcome(job) -> str:
    try:
        status = job.get_status(refresh=True)
    except (InvalidJobOperation, NoSuchJobError):
        return "finished (result discarded)"
    return {
        JobStatus.FINISHED: "finished",
        JobStatus.FAILED: "failed",
        JobStatus.SCHEDULED: "failed, retry scheduled",
        JobStatus.QUEUED: "requeued",
    }.get(status, status.value)


class Worker(JobCounting, JobLogging, HerokuWorker):
    log_result_lifespan = False  # our own line per job says what happened
    imminent_shutdown_delay = int(os.environ.get("WORKER_SHUTDOWN_GRACE", "20"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.app = process_app()
        self._interrupted_by_shutdown = False

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
        if self._interrupted_by_shutdown and job.get_status(refresh=True) == JobStatus.FAILED:
            job.requeue(at_front=True)
            log.warning(
                "job %s was interrupted by a shutdown; back at the front of %s", job.id, queue.name
            )


class InProcessWorker(JobCounting, JobLogging, SimpleWorker):
    """Runs jobs in its own process, without forking: for tests and debugging."""
