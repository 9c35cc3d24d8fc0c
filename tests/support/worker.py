"""Workers for the tests: RQ's in-process worker with the app's per-job log line and counts,
and a job taken as RQ's worker takes one."""

from rq import Queue, Worker
from rq.job import Job
from rq.worker import SimpleWorker

from blog.rq_internals import HookedWorker
from workers.worker import JobLog


class InProcessWorker(JobLog, HookedWorker, SimpleWorker):
    """Runs jobs in the test process itself, without forking or threads."""


def take_next_job(worker: Worker) -> Job:
    """Take the next job off ``worker``'s queues and record it as running, as RQ's worker does
    before it calls the job's function (which never runs here): the worker is busy with it,
    and the job is started, with an execution in its queue's started registry."""
    job, _ = Queue.dequeue_any(worker.queues, timeout=None, connection=worker.connection)
    worker.prepare_execution(job)
    worker.prepare_job_execution(job, remove_from_intermediate_queue=len(worker.queues) == 1)
    return job
