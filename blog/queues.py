"""Redis, the named queues, and the one way the app puts jobs on them.

Every process (web, worker, clock, dashboard) connects with ``connect(config["REDIS_URL"])``;
the URL carries the connection options (see ``blog.config.redis_url``), so ``rq`` commands
given the same URL connect the same way.

Every job goes through ``JobRequest``, which checks it before anything reaches Redis: the
function itself (not a dotted name), a known queue, only the RQ options in ``RQ_OPTIONS``,
and arguments that are ids or short plain values. ``JOBS_MODE`` decides where a checked job
goes: to Redis (``redis``), recorded for a test to look at (``fake``), or run right here
(``inline``); see ``blog.job_modes``.

A job also carries tags, as Resque's and Sidekiq's jobs can: the objects it concerns and its
kind (``post:42``, ``user:7``, ``tagging``), set where it is enqueued and kept in its
``meta``. The admin's job pages and ``flask jobs find`` show them and find jobs by them.
"""

import logging
import random
import re
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask, current_app
from redis import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry
from rq import Retry
from rq.job import Job
from sqlalchemy import event
from sqlalchemy.orm import Session

from blog import job_modes, tracing
from blog.extensions import db

# RQ's queue, keeping a scheduled job's due time to the microsecond (RQ rounds it down to the
# second, so a scheduler would run it up to a second early). Every queue of the app, the
# worker's included, is of this class: enqueue_in, enqueue_at and retries keep the exact time.
from blog.rq_internals import ExactTimeQueue as Queue

log = logging.getLogger(__name__)

# The worker serves these in this strict order: a job waits while any queue to its left has
# work. (RQ has no weighted queues, unlike Sidekiq.)
QUEUE_NAMES = ("urgent", "mailers", "default", "low")

# The options of RQ's ``Queue.enqueue`` that the app uses, and the type each must have. Any
# other keyword is refused: RQ would pass it to the job function as an argument, unchecked.
# (``description`` is left out on purpose: rq-dashboard prints it as it is.)
RQ_OPTIONS = {
    "retry": Retry,
    "job_id": str,
    "job_timeout": int,
    "result_ttl": int,
    "failure_ttl": int,
    "ttl": int,
    "at_front": bool,
}

_PLAIN_TYPES = (int, float, bool, type(None))
_MAX_STRING_ARG = 200

# What the app keeps in a job's ``meta``: its tags, its Retry's ``max`` (RQ keeps only the
# retries left, so "attempt 2 of 4" needs it), and, noted by the worker, the last line of the
# error of its last failed attempt.
TAGS = "tags"
RETRY_MAX = "retry_max"
LAST_ERROR = "last_error"
# A tag is a word or an object's ``kind:id``: letters, digits and ``_ . : -``, short enough to
# read in a table. A handful per job.
TAG_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,47}")
MAX_TAGS = 8


def backoff(max_retries: int) -> Retry:
    """Retry up to ``max_retries`` times, waiting as Sidekiq does: 15 s, 16 s, 31 s, 96 s, 271 s ...

    Each wait is ``n**4 + 15`` seconds plus a jitter of up to ``10 * (n + 1)`` so that jobs that
    failed together do not all come back at the same second. ``RETRY_BACKOFF_FACTOR`` scales
    the waits: 0 retries at once (tests), 0.1 makes the demo quick to watch.
    """
    factor = current_app.config["RETRY_BACKOFF_FACTOR"]
    waits = [n**4 + 15 + random.randint(0, 10 * (n + 1)) for n in range(max_retries)]
    return Retry(max=max_retries, interval=[round(wait * factor) for wait in waits])


class UnsafeJobArgument(TypeError):
    """A job argument or option that the app does not let through to Redis."""


def connect(url: str) -> Redis:
    """The app's Redis client. When Redis is unreachable it tries once more, at once (enough
    to replace a connection Redis dropped), then gives up: redis-py's default of three
    retries with a growing backoff would keep a user's request waiting for half a minute.
    (rq's command line, which runs the worker and the clock, keeps the default.)"""
    return Redis.from_url(url, retry=RedisRetry(NoBackoff(), retries=1))


def init_app(app: Flask) -> None:
    app.extensions["redis"] = connect(app.config["REDIS_URL"])
    app.extensions["fake_jobs"] = job_modes.FakeJobs(app)


def redis_connection() -> Redis:
    return current_app.extensions["redis"]


def check_queue_name(name: str) -> None:
    if name not in QUEUE_NAMES:
        raise ValueError(f"unknown queue {name!r}; the queues are {', '.join(QUEUE_NAMES)}")


def get_queue(name: str = "default") -> Queue:
    check_queue_name(name)
    return Queue(name, connection=redis_connection())


def check_job_arguments(args: tuple, kwargs: dict) -> None:
    """Allow ids and short plain values only.

    A job's arguments are stored in Redis and shown by rq-dashboard, which renders them
    unescaped: an ORM object would be a stale copy, and user text could carry a script. So a
    job gets the id and loads the row itself. Strings are for operator-chosen values (a demo
    message), short and free of HTML.
    """
    for name in kwargs:
        if not isinstance(name, str) or not name.isidentifier():
            raise UnsafeJobArgument(f"job keyword arguments need plain names, not {name!r}")
    for value in (*args, *kwargs.values()):
        check_plain_value(value)


def check_plain_value(value) -> None:
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


def check_tags(tags) -> None:
    if isinstance(tags, str):
        raise UnsafeJobArgument(f"tags are a list of tags, not one string ({tags!r})")
    if len(tags) > MAX_TAGS:
        raise UnsafeJobArgument(f"a job takes {MAX_TAGS} tags at most, not {len(tags)}")
    for tag in tags:
        if not isinstance(tag, str) or not TAG_PATTERN.fullmatch(tag):
            raise UnsafeJobArgument(
                f"a tag is up to 48 letters, digits and _ . : - (like post:42), not {tag!r}"
            )


def job_meta(tags=(), retry: Retry | None = None) -> dict:
    """What a job enqueued with ``tags`` and ``retry`` keeps in its ``meta``; also for
    ``rq cron``'s jobs, which are not enqueued through ``JobRequest``."""
    check_tags(tags)
    meta = {TAGS: list(tags)}
    if retry is not None:
        meta[RETRY_MAX] = retry.max
    return meta


def check_options(options: dict) -> None:
    """Only the options named in ``RQ_OPTIONS``, each of its type; a job id is a plain string."""
    for name, value in options.items():
        if name not in RQ_OPTIONS:
            raise UnsafeJobArgument(
                f"{name!r} is not an enqueue option ({', '.join(RQ_OPTIONS)}); "
                "pass job arguments positionally, or as kwargs={...}"
            )
        kind = RQ_OPTIONS[name]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise UnsafeJobArgument(f"the {name} option must be a {kind.__name__}, not {value!r}")
    if "job_id" in options:
        check_plain_value(options["job_id"])


@dataclass
class JobRequest:
    """A checked job, to put on a queue now or once the current transaction commits."""

    func: object
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    queue: str = "default"
    delay: timedelta | None = None
    options: dict = field(default_factory=dict)
    tags: tuple[str, ...] = ()

    def __post_init__(self):
        if not callable(self.func):
            raise TypeError("enqueue the job function itself, not its dotted name")
        check_queue_name(self.queue)
        check_options(self.options)
        check_job_arguments(self.args, self.kwargs)
        check_tags(self.tags)
        self.tags = tuple(self.tags)

    @property
    def name(self) -> str:
        return getattr(self.func, "__name__", repr(self.func))

    @property
    def dotted_name(self) -> str:
        """The function's name as RQ records it (``Job.func_name``)."""
        return f"{self.func.__module__}.{self.func.__qualname__}"

    def enqueue(self) -> Job | job_modes.FakeJob:
        mode = current_app.config["JOBS_MODE"]
        if mode == "fake":
            return current_app.extensions["fake_jobs"].record(self)
        if mode == "inline":
            return job_modes.run_inline(self)
        queue = get_queue(self.queue)
        with tracing.enqueue_span(self.dotted_name, self.queue):
            if self.delay is not None:
                return queue.enqueue_in(self.delay, self.func, **self.rq_arguments())
            return queue.enqueue(self.func, **self.rq_arguments())

    def rq_arguments(self) -> dict:
        """The job's arguments, options and meta, as RQ's ``enqueue`` takes them. The meta
        carries the job's tags, and the trace it was enqueued in when tracing is on
        (``blog.tracing``); a job fails with the dead-job cap's ``failure_ttl`` unless it
        names its own."""
        options = {
            "failure_ttl": dead_job_ttl(current_app.config["DEAD_JOBS_MAX_AGE"]),
            **self.options,
        }
        meta = {**job_meta(self.tags, self.options.get("retry")), **tracing.job_meta()}
        return {"args": self.args, "kwargs": self.kwargs, **options, "meta": meta}


def dead_job_ttl(max_age_days: int) -> int:
    """Seconds a failed job is kept: ``DEAD_JOBS_MAX_AGE`` days, not RQ's default of a year
    (``blog.dead_jobs`` says why, and caps the count too)."""
    return max_age_days * 24 * 3600


def enqueue(
    func,
    *args,
    queue: str = "default",
    delay: timedelta | None = None,
    kwargs: dict | None = None,
    tags: tuple[str, ...] = (),
    **options,
) -> Job | job_modes.FakeJob:
    """Put ``func(*args, **kwargs)`` on ``queue`` now (after ``delay``, if given), tagged with
    ``tags``.

    ``options`` are the RQ options in ``RQ_OPTIONS``; anything else is refused.
    """
    return JobRequest(func, args, kwargs or {}, queue, delay, options, tags).enqueue()


def enqueue_many(
    func, args_list: list[tuple], queue: str = "default", tags: tuple[str, ...] = (), **options
) -> list[Job | job_modes.FakeJob]:
    """Put one ``func(*args)`` job per item of ``args_list`` on ``queue``, in one round trip;
    each gets ``tags``."""
    requests = [
        JobRequest(func, tuple(args), {}, queue, None, dict(options), tags) for args in args_list
    ]
    if current_app.config["JOBS_MODE"] != "redis" or not requests:
        return [request.enqueue() for request in requests]
    with tracing.enqueue_span(requests[0].dotted_name, queue, count=len(requests)):
        prepared = []
        for request in requests:
            arguments = request.rq_arguments()
            # prepare_data names the option ``timeout`` where enqueue says ``job_timeout``.
            if "job_timeout" in arguments:
                arguments["timeout"] = arguments.pop("job_timeout")
            prepared.append(Queue.prepare_data(request.func, **arguments))
        return get_queue(queue).enqueue_many(prepared)


# Jobs waiting for their transaction to commit, by transaction, in ``Session.info``.
_WAITING_JOBS = "jobs_after_commit"


def enqueue_after_commit(
    func,
    *args,
    queue: str = "default",
    delay: timedelta | None = None,
    kwargs: dict | None = None,
    tags: tuple[str, ...] = (),
    **options,
) -> None:
    """Put ``func(*args, **kwargs)`` on ``queue``, tagged with ``tags``, once the database
    transaction commits.

    Enqueued any earlier, a fast worker could look for a row that is not committed yet; and
    if the transaction rolled back, the job would act on something that never happened. So
    the job waits with the innermost transaction (a SAVEPOINT from ``begin_nested()``, or the
    session's transaction, begun now if none is open) and goes to Redis when the outermost
    one commits. A transaction or savepoint that rolls back drops its jobs.

    Once the data has committed, a failure to enqueue fails nothing else: it is logged, the
    row the job was for stays pending, and ``requeue_stranded_work`` enqueues it again later.
    """
    request = JobRequest(func, args, kwargs or {}, queue, delay, options, tags)
    session = db.session()
    transaction = session.get_nested_transaction() or session.get_transaction()
    if transaction is None:
        transaction = session.begin()
    session.info.setdefault(_WAITING_JOBS, {}).setdefault(transaction, []).append(request)


@event.listens_for(Session, "after_commit")
def _enqueue_jobs_after_commit(session: Session) -> None:
    waiting = session.info.get(_WAITING_JOBS)
    if not waiting:
        return
    savepoint = session.get_nested_transaction()
    if savepoint is not None:
        # A savepoint released: its jobs now wait for the transaction around it.
        jobs = waiting.pop(savepoint, [])
        waiting.setdefault(savepoint.parent, []).extend(jobs)
        return
    for request in waiting.pop(session.get_transaction(), []):
        _enqueue_committed(request)


@event.listens_for(Session, "after_transaction_end")
def _drop_jobs_of_a_rolled_back_transaction(session: Session, transaction) -> None:
    # A committed transaction handed its jobs on in after_commit, which runs first; jobs still
    # here belong to one that rolled back or was closed without committing.
    dropped = session.info.get(_WAITING_JOBS, {}).pop(transaction, [])
    if dropped:
        log.info(
            "dropped %s job(s) with a transaction that did not commit: %s",
            len(dropped),
            ", ".join(request.name for request in dropped),
        )


def _enqueue_committed(request: JobRequest) -> None:
    """Enqueue a job whose data has committed; log, never raise: the commit has happened."""
    try:
        request.enqueue()
    except RedisError as error:
        log.warning(
            "could not enqueue %s%r on %s (%s); it stays pending until requeued",
            request.name,
            request.args,
            request.queue,
            error,
        )
    except Exception:
        log.exception(
            "could not enqueue %s%r on %s; it stays pending until requeued",
            request.name,
            request.args,
            request.queue,
        )
