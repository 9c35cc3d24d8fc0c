"""Changing a job before it runs: run it now, delete it, give it a new due time, move it to
another queue, change its arguments. For the jobs admin pages and ``flask jobs edit``.

Only a pending job can change: one waiting on a queue (queued) or for its time in the
scheduled registry (scheduled, or retrying after a failure). A worker may take a queued job,
and the scheduler move a due one onto its queue, at any moment; a change written after that
would put back, or alter, a job that is already running. So each change is one Redis
transaction that holds only while the job is still where it was found: it watches (WATCH)
the job's hash and the list the job is in, checks that the job is there, and writes in
MULTI/EXEC. If a worker or the scheduler touched either key meanwhile, Redis refuses the
transaction, and it starts again from what Redis holds now; a job that has started by then is
refused with ``NotPending``.

"Run now" makes the job due now, and the worker's scheduler moves it onto its queue within a
tenth of a second (``workers.scheduler``), as it moves every due job. So the scheduler stays
the one thing that moves scheduled jobs, whatever they carry (a rate limit, a retry's place
at the front of its queue), and a job cannot be moved twice.
"""

import inspect
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis
from redis.client import Pipeline
from redis.exceptions import WatchError
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import Job, JobStatus

from blog.queues import (
    QUEUE_NAMES,
    Queue,
    UnsafeJobArgument,
    check_job_arguments,
    check_queue_name,
)

# States a job can be changed in (``blog.job_search.STATES``).
PENDING = ("queued", "scheduled", "retrying")
# Transactions tried, a moment apart, before giving up on a job that keeps changing.
ATTEMPTS = 5
ATTEMPT_PAUSE = 0.05


class NotPending(Exception):
    """The job has started, finished, failed or gone: it can no longer be changed."""


class BadEdit(ValueError):
    """A change the job cannot take: an unknown queue, a time without a zone, arguments the
    app would refuse at enqueue or the function would not accept. ``field`` names which:
    ``due``, ``queue`` or ``arguments``."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


@dataclass
class Place:
    """Where a pending job is: on ``queue`` (``due`` is None) or in its scheduled registry."""

    queue: Queue
    due: datetime | None

    @property
    def key(self) -> str:
        return self.queue.key if self.due is None else self.queue.scheduled_job_registry.key


def locate(job: Job) -> Place | None:
    """Where ``job`` waits: ``NotPending`` if it is not pending, None if it is not where its
    status says (for a moment, while a worker takes it or the scheduler moves it)."""
    status = job.get_status(refresh=False)
    if status not in (JobStatus.QUEUED, JobStatus.SCHEDULED):
        raise NotPending(
            f"Job {job.id} is {status.value}: only a job that has not started (queued, "
            "scheduled or retrying) can be changed."
        )
    if job.origin not in QUEUE_NAMES:
        raise NotPending(f"Job {job.id} is on {job.origin!r}, not a queue of this app.")
    queue = Queue(job.origin, connection=job.connection)
    if status == JobStatus.QUEUED:
        return Place(queue, None) if queue.get_job_position(job.id) is not None else None
    try:
        return Place(queue, queue.scheduled_job_registry.get_scheduled_time(job.id))
    except NoSuchJobError:
        return None


def change(connection: Redis, job_id: str, write: Callable[[Job, Place, Pipeline], None]) -> Job:
    """Call ``write(job, place, pipeline)`` to change the pending job ``job_id`` in one
    transaction, which holds only if neither the job nor its list changed meanwhile."""
    for attempt in range(ATTEMPTS):
        if attempt:
            time.sleep(ATTEMPT_PAUSE)
        with connection.pipeline() as pipeline:
            try:
                pipeline.watch(Job.key_for(job_id))
                try:
                    job = Job.fetch(job_id, connection=connection)
                except NoSuchJobError:
                    raise NotPending(
                        f"There is no job {job_id}: it ran and expired, or was deleted."
                    ) from None
                place = locate(job)
                if place is None:
                    continue
                pipeline.watch(place.key)
                again = locate(job)  # a change before this watch began would go unnoticed
                if again is None or again.key != place.key:
                    continue
                pipeline.multi()
                write(job, place, pipeline)
                pipeline.execute()
                return job
            except WatchError:
                continue  # a worker or the scheduler got there first: look again
    raise NotPending(
        f"Job {job_id} is being taken by a worker or moved by the scheduler right now; "
        "look again in a moment."
    )


def run_now(connection: Redis, job_id: str) -> Job:
    """Make a scheduled or retrying job due now (see the top of this module)."""

    def write(job: Job, place: Place, pipeline: Pipeline) -> None:
        if place.due is None:
            raise NotPending(f"Job {job.id} is queued already: it runs when a worker is free.")
        place.queue.schedule_job(job, datetime.now(UTC), pipeline=pipeline)

    return change(connection, job_id, write)


def delete(connection: Redis, job_id: str) -> None:
    """Delete a pending job: off its list in the transaction, so that no worker can take it
    any more, then its records."""

    def write(job: Job, place: Place, pipeline: Pipeline) -> None:
        if place.due is None:
            place.queue.remove(job, pipeline=pipeline)
        else:
            place.queue.scheduled_job_registry.remove(job, pipeline=pipeline)

    change(connection, job_id, write).delete(remove_from_queue=False)


def edit(
    connection: Redis,
    job_id: str,
    *,
    due: datetime | None = None,
    queue: str | None = None,
    arguments: tuple[tuple, dict] | None = None,
) -> Job:
    """Change a pending job: when it is due (a queued job given a time is scheduled for it),
    the queue it runs on (at the back of that queue, or in its scheduled registry at the same
    time), and its arguments (``(args, kwargs)``, checked as ``blog.queues`` checks them at
    enqueue, and against the function's signature). Nothing changes unless all of it can."""
    if due is not None and due.tzinfo is None:
        raise BadEdit("due", "give the time with its zone (UTC, or +01:00)")
    if queue is not None:
        try:
            check_queue_name(queue)
        except ValueError as error:
            raise BadEdit("queue", str(error)) from None

    def write(job: Job, place: Place, pipeline: Pipeline) -> None:
        if arguments is not None:
            args, kwargs = arguments
            check_arguments(job, args, kwargs)
            job.args, job.kwargs = tuple(args), dict(kwargs)
            job.description = job.get_call_string()  # what rq-dashboard shows
        target = place.queue if queue is None else Queue(queue, connection=connection)
        moved = target.name != place.queue.name
        if moved and job.has_rate_limit:
            raise BadEdit("queue", "a rate-limited job keeps its queue, whose limit counts it")
        when = due or place.due
        if place.due is None and (moved or due):
            place.queue.remove(job, pipeline=pipeline)
        elif place.due is not None and moved:
            place.queue.scheduled_job_registry.remove(job, pipeline=pipeline)
        job.origin = target.name
        if when is not None:
            target.schedule_job(job, when, pipeline=pipeline)  # saves the job with it
        elif moved:
            job.enqueued_at = datetime.now(UTC)  # at the back of the new queue, from now
            job.save(pipeline=pipeline)
            target.push_job_id(job.id, pipeline=pipeline)
        else:
            job.save(pipeline=pipeline)

    return change(connection, job_id, write)


def json_arguments(text: str, kind: type) -> list | dict:
    """Arguments as an admin types them: a JSON list (``kind`` list) or object (dict); empty
    is none. ``ValueError`` says what is wrong."""
    example = '[0.5, "hello", 0]' if kind is list else '{"fail_rate": 0.5}'
    try:
        value = json.loads(text.strip() or ("[]" if kind is list else "{}"))
    except (ValueError, RecursionError):  # RecursionError: nested thousands deep
        raise ValueError(f"not JSON: write it like {example}") from None
    if not isinstance(value, kind):
        raise ValueError(f"a JSON {'list' if kind is list else 'object'}, like {example}")
    return value


def check_arguments(job: Job, args: tuple, kwargs: dict) -> None:
    """The check of ``blog.queues`` at enqueue, and then whether the function takes them."""
    try:
        check_job_arguments(tuple(args), dict(kwargs))
    except UnsafeJobArgument as error:
        raise BadEdit("arguments", str(error)) from None
    try:
        signature = inspect.signature(job.func)
    except (DeserializationError, ImportError, AttributeError, ValueError, TypeError):
        return  # a function this process cannot load: its worker will say
    try:
        signature.bind(*args, **kwargs)
    except TypeError as error:
        raise BadEdit("arguments", f"{job.func_name} would not take them: {error}") from None
