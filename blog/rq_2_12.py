"""What the app reads and deletes in Redis below RQ's public API, as RQ 2.12 lays it out.

This is the one module that knows RQ's key names and job hash fields; everything else goes
through RQ's classes. Before upgrading RQ (``requirements.txt`` pins it), check each function
against the new version's ``job.py``, ``executions.py`` and ``results.py``, and rename the
module; ``tests/test_queue_admin.py`` fails until the installed RQ is the one named here.
"""

from redis import Redis
from rq.job import Job
from rq.results import Result

RQ_VERSION = "2.12"

# Every record RQ 2.12 keeps about a job, besides the queues and registries listing it:
# the job hash (and its dependents set), its results stream, and its executions (a set per
# job, and a hash per execution, which a worker's heartbeat writes to).
JOB_RECORD_PATTERNS = (
    Job.redis_job_namespace_prefix + "*",  # rq:job:<id>, rq:job:<id>:dependents
    Result.get_key("*"),  # rq:results:<id>
    "rq:executions:*",
    "rq:execution:*",
    "rq:queue:*:intermediate:first_seen:*",  # when a worker took each job off its queue
)


def created_and_started(connection: Redis, job_ids: list[str]) -> list[tuple[bytes, bytes]]:
    """Two fields of each job's hash, in one round trip (``Job.fetch_many`` would load every
    job whole, and fail on a hash that a heartbeat wrote after the job was deleted).

    ``created_at`` is empty if the job is gone; ``started_at`` is empty until it starts.
    """
    with connection.pipeline() as pipe:
        for job_id in job_ids:
            pipe.hmget(Job.key_for(job_id), ["created_at", "started_at"])
        return pipe.execute()


def job_ids_with_a_hash(connection: Redis) -> set[str]:
    """The ids of every job hash in this Redis database, wherever (or whether) it is listed."""
    prefix = Job.redis_job_namespace_prefix
    ids = set()
    for key in connection.scan_iter(match=prefix + "*", count=1000):
        rest = key.decode()[len(prefix) :]
        if rest and ":" not in rest:  # not rq:job:<id>:dependents
            ids.add(rest)
    return ids


def delete_job_records(connection: Redis) -> int:
    """Delete every record of every job, whatever state it was left in; return how many keys.

    ``Job.delete`` cannot do this for a job whose worker was killed: it fetches each
    execution, and fails on one whose hash expired (``ValueError: Execution ... not found``)
    or that a late heartbeat recreated with one field (``KeyError: b'created_at'``).
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
