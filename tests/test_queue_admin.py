"""Clearing the queues, whatever state RQ's records were left in."""

from rq import Worker
from rq.executions import Execution
from rq.job import JobStatus

from blog.queue_admin import WorkerStats, clear_all, worker_stats
from blog.queues import enqueue, get_queue, redis_connection
from tests.support.worker import take_next_job
from workers.demo import demo


def leave_a_job_as_a_killed_worker_does(queue, message: str, heartbeat_after_expiry: bool):
    """A worker took the job and started an execution, as RQ's worker writes them,
    then died; the execution's hash expired. With ``heartbeat_after_expiry``, the worker's
    last heartbeat landed after that and wrote one field of it back."""
    job = enqueue(demo, 0, message)
    connection = queue.connection
    queue.remove(job)
    with connection.pipeline() as pipe:
        execution = Execution.create(job, ttl=60, pipeline=pipe, worker_name="killed")
        job.set_status(JobStatus.STARTED, pipeline=pipe)
        pipe.execute()
    connection.delete(execution.key)
    if heartbeat_after_expiry:
        connection.hset(execution.key, "last_heartbeat", 1.0)
    return job


def test_clear_removes_what_a_killed_many_worker_run_leaves(app_ctx, run_jobs):
    queue = get_queue("default")
    leave_a_job_as_a_killed_worker_does(queue, "execution expired", heartbeat_after_expiry=False)
    leave_a_job_as_a_killed_worker_does(queue, "late heartbeat", heartbeat_after_expiry=True)
    orphan = enqueue(demo, 0, "unlisted")
    queue.remove(orphan)
    enqueue(demo, 0, "waiting")
    enqueue(demo, 0, "failed", 1.0, queue="urgent")
    run_jobs()
    enqueue(demo, 0, "waiting")

    cleared = clear_all()

    assert dict(cleared.jobs) == {
        "waiting": 1,
        "started": 2,
        "failed": 1,
        "finished": 1,
        "unlisted": 1,
    }
    assert redis_connection().keys("rq:job*") == []
    assert redis_connection().keys("rq:execution*") == []
    assert redis_connection().keys("rq:results*") == []
    assert redis_connection().keys("rq:wip:*") == []


def test_clear_on_an_empty_redis_removes_nothing(app_ctx):
    cleared = clear_all()
    assert (cleared.total, cleared.keys) == (0, 0)


def test_a_worker_still_running_a_cleared_job_shows_as_busy_with_no_job(app_ctx):
    """Its heartbeat after the clear writes one field of the job's execution back."""
    queue = get_queue("default")
    worker = Worker([queue], connection=queue.connection, name="busy")
    worker.register_birth()
    job = enqueue(demo, 0, "running")
    take_next_job(worker)
    assert worker_stats() == [WorkerStats("busy", "busy", ["default"], job.id, "workers.demo.demo")]
    clear_all()
    with queue.connection.pipeline() as pipe:
        worker.execution.heartbeat(queue.started_job_registry, ttl=60, pipeline=pipe)
        pipe.execute()
    assert worker_stats() == [WorkerStats("busy", "busy", ["default"], None, None)]
