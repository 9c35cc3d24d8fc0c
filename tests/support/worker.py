"""A worker for the tests: RQ's in-process worker with the app's per-job log line and counts."""

from rq.worker import SimpleWorker

from blog.rq_internals import HookedWorker
from workers.worker import JobLog


class InProcessWorker(JobLog, HookedWorker, SimpleWorker):
    """Runs jobs in the test process itself, without forking or threads."""
