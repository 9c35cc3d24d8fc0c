"""Redis, the named queues, and enqueueing jobs once the database transaction has committed.

Every process (web, worker, clock, dashboard) connects with ``connect(config["REDIS_URL"])``;
the URL carries the connection options (see ``blog.config.redis_url``), so ``rq`` commands
given the same URL connect the same way.
"""

import logging
import random
from dataclasses import dataclass, field
from datetime import timedelta

import rq
from flask import Flask, current_app
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry
from rq import Retry
from rq.job import Job
from rq.registry import ScheduledJobRegistry
from sqlalchemy import event
from sqlalchemy.orm import Session

from blog.extensions import db

log = logging.getLogger(__name__)

# The worker serves these in this strict order: a job waits while any queue to its left has
# work. (RQ has no weighted queues, unlike Sidekiq.)
QUEUE_NAMES = ("urgent", "mailers", "default", "low")

_AFTER_COMMIT_KEY = "jobs_after_commit"
_PLAIN_TYPES = (int, float, bool, type(None))
_MAX_STRING_ARG = 200


def backoff(max_retries: int) -> Retry:
    """Retry up to ``max_retries`` times, waiting as Sidekiq does: 15 s, 16 s, 31 s, 96 s, 271 s ...

    Each wait is ``n**4 + 15`` seconds plus a jitter of up to ``10 * (n + 1)`` so that jobs that
    failed together do not all come back at the same second. ``RETRY_BACKOFF_FACTOR`` scales
    the waits: 0 retries at once (tests), 0.1 makes the demo quick to watch.
    """
    factor = current_app.config["RETRY_BACKOFF_FACTOR"]
    waits = [n**4 + 15 + random.randint(0, 10 * (n + 1)) for n in range(max_retries)]
    return Retry(max=max_retries, interval=[round(wait * factor) for wait in waits])


class Queue(rq.Queue):
    """RQ's queue, keeping a scheduled job's due time to the microsecond.

    RQ 2.12 stores it rounded down to the second, so a scheduler reading it back runs jobs up
    to a second early. Every queue of the app, the worker's included, is of this class, so
    ``enqueue_in``, ``enqueue_at`` and retries with a backoff all keep the exact time (and a
    stock RQ scheduler, which compares with the current second, is never early with it).
    """

    def schedule_job(self, job: Job, datetime, pipeline=None, unique: bool = False) -> Job:
        job = super().schedule_job(job, datetime, pipeline=pipeline, unique=unique)
        connection = pipeline if pipeline is not None else self.connection
        key = ScheduledJobRegistry(queue=self).key
        connection.zadd(key, {job.id: datetime.timestamp()}, xx=True)
        return job


class UnsafeJobArgument(TypeError):
    """A job argument that is not an id or a short plain value."""


def connect(url: str) -> Redis:
    """The app's Redis client. When Redis is unreachable it tries once more, at once (enough
    to replace a connection Redis dropped), then gives up: redis-py's default of three
    retries with a growing backoff would keep a user's request waiting for half a minute.
    (rq's command line, which runs the worker and the clock, keeps the default.)"""
    return Redis.from_url(url, retry=RedisRetry(NoBackoff(), retries=1))


def init_app(app: Flask) -> None:
    app.extensions["redis"] = connect(app.config["REDIS_URL"])


def redis_connection() -> Redis:
    return current_app.extensions["redis"]


def get_queue(name: str = "default") -> Queue:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}; the queues are {', '.join(QUEUE_NAMES)}")
    return Queue(name, connection=redis_connection())


def check_job_arguments(args: tuple, kwargs: dict) -> None:
    """Allow ids and short plain values only.

    A job's arguments are stored in Redis and shown by rq-dashboard, which renders them
    unescaped: an ORM object would be a stale copy, and user text could carry a script. So a
    job gets the id and loads the row itself. Strings are for operator-chosen values (a demo
    message), short and free of HTML.
    """
    for value in (*args, *kwargs.values()):
        if isinstance(value, str):
            if len(value) > _MAX_STRING_ARG or any(ch in value for ch in "<>&"):
                raise UnsafeJobArgument(
                    f"string job arguments must be under {_MAX_STRING_ARG} characters, "
                    "without < > &; pass an id instead"
                )
        elif not isinstance(value, _PLAIN_TYPES):
            raise UnsafeJobArgument(
                f"job arguments must be ids or plain values, not {type(value).__name__}"
            )


@dataclass
class JobRequest:
    """A job to put on a queue: now, or once the current transaction commits."""

    func: object
    args: tuple = ()
    queue: str = "default"
    delay: timedelta | None = None
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if not callable(self.func):
            raise TypeError("enqueue the job function itself, not its dotted name")
        check_job_arguments(self.args, self.options.get("kwargs", {}))

    def enqueue(self) -> Job:
        queue = get_queue(self.queue)
        if self.delay is not None:
            return queue.enqueue_in(self.delay, self.func, *self.args, **self.options)
        return queue.enqueue(self.func, *self.args, **self.options)


def enqueue(func, *args, queue: str = "default", delay: timedelta | None = None, **options) -> Job:
    """Put ``func(*args)`` on ``queue`` now (after ``delay``, if given).

    ``options`` are RQ's: ``retry``, ``job_id``, ``job_timeout``, ``result_ttl`` ...
    """
    return JobRequest(func, args, queue, delay, options).enqueue()


def enqueue_many(func, args_list: list[tuple], queue: str = "default", **options) -> list[Job]:
    """Put one ``func(*args)`` job per item of ``args_list`` on ``queue``, in one round trip."""
    requests = [JobRequest(func, tuple(args), queue) for args in args_list]
    if "job_timeout" in options:  # enqueue() calls it job_timeout, prepare_data timeout
        options["timeout"] = options.pop("job_timeout")
    return get_queue(queue).enqueue_many(
        [Queue.prepare_data(r.func, r.args, **options) for r in requests]
    )


def enqueue_after_commit(
    func, *args, queue: str = "default", delay: timedelta | None = None, **options
) -> None:
    """Put ``func(*args)`` on ``queue`` once the current database transaction commits.

    Enqueued any earlier, a fast worker could look for a row that is not committed yet; and
    if the transaction rolled back, the job would act on something that never happened. So
    the job waits in the session and goes to Redis in ``after_commit``, or is dropped with a
    rollback. If Redis is down at that moment the request still succeeds: the row the job was
    for stays pending, and the ``requeue_stranded_work`` job enqueues it again later.
    """
    request = JobRequest(func, args, queue, delay, options)
    session = db.session()
    if not session.in_transaction():
        _enqueue_or_log(request)
        return
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(request)


def _enqueue_or_log(request: JobRequest) -> None:
    try:
        request.enqueue()
    except RedisError as error:
        log.warning(
            "could not enqueue %s%r on %s (%s); it stays pending until requeued",
            getattr(request.func, "__name__", request.func),
            request.args,
            request.queue,
            error,
        )


@event.listens_for(Session, "after_commit")
def _enqueue_jobs_after_commit(session: Session) -> None:
    for request in session.info.pop(_AFTER_COMMIT_KEY, []):
        _enqueue_or_log(request)


@event.listens_for(Session, "after_transaction_end")
def _drop_jobs_of_a_rolled_back_transaction(session: Session, transaction) -> None:
    # after_commit has already taken the jobs of a committed transaction; what is left
    # belongs to one that rolled back or was closed without committing.
    if transaction.parent is None:
        session.info.pop(_AFTER_COMMIT_KEY, None)
