"""The worker class the Procfile runs: ``rq worker-pool --worker-class workers.worker.Worker``.

It is RQ's ``HerokuWorker`` (fork a work-horse per job; on SIGTERM let the running job finish,
but interrupt it after ``imminent_shutdown_delay`` seconds so the process is gone before a
platform's 30 s grace period ends), plus six things this app needs:

- one Flask app per worker process, made before the first fork, so each work-horse inherits
  it instead of building its own;
- fresh database connections in every work-horse (see ``main_work_horse``);
- one log line when a job starts and one when it ends, with its duration and outcome;
- the processed and failed totals of the admin stats page (see ``blog.job_stats``);
- a job interrupted by a shutdown goes back to the front of its queue instead of failing;
- short waits, so that a SIGTERM is never noticed too late (see ``SIGNAL_CHECK_INTERVAL``).
"""

import logging
import os
import time

from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import JobStatus
from rq.worker import HerokuWorker, SimpleWorker

from blog import job_stats
from blog.extensions import db
from workers import process_app

log = logging.getLogger("workers.jobs")

# The longest the worker blocks at a time, waiting for a job or for its work-horse.
# A platform signals every process at once, and a signal that lands just as the worker
# starts to wait is handled only when the wait ends: after RQ's default waits (405 s for a
# job, 30 s for a horse), the platform would have killed the worker already.
SIGNAL_CHECK_INTERVAL = 5


class JobReports:
    """After each job, one log line (what ran, how it ended, how long it took) and the counts
    for the admin stats page. ``execute_job`` runs in the worker process itself, so both
    happen even when the work-horse crashes or is killed."""

    def execute_job(self, job, queue):
        started = time.monotonic()
        log.info("job %s %s on %s: started", job.id, job.func_name, queue.name)
        try:
            super().execute_job(job, queue)
        finally:
            status = final_status(job)
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


OUTCOMES = {
    JobStatus.FINISHED: ("finished", ""),
    JobStatus.FAILED: ("failed", ""),
    JobStatus.SCHEDULED: ("failed", ", retry scheduled"),
    JobStatus.QUEUED: ("requeued", ""),
}


def final_status(job) -> JobStatus:
    try:
        return job.get_status(refresh=True)
    except (InvalidJobOperation, NoSuchJobError):
        return JobStatus.FINISHED  # and deleted at once, as its result_ttl is 0


class Worker(JobReports, HerokuWorker):
    log_result_lifespan = False  # our own line per job says what happened
    imminent_shutdown_delay = int(os.environ.get("WORKER_SHUTDOWN_GRACE", "20"))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.job_monitoring_interval = SIGNAL_CHECK_INTERVAL
        self.app = process_app()
        self._interrupted_by_shutdown = False

    @property
    def dequeue_timeout(self) -> int:
        return SIGNAL_CHECK_INTERVAL

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


class InProcessWorker(JobReports, SimpleWorker):
    """Runs jobs in its own process, without forking: for tests and debugging."""
