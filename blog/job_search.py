"""Finding jobs wherever RQ keeps them, by id, function, argument text or tag: for the jobs
admin pages (``blog.admin.jobs``) and ``flask jobs find``.

RQ lists each job's id in the one place it is now (a queue, or one of the queue's
registries: scheduled, started, deferred, failed, finished, canceled) and keeps the job itself
in a hash. rq-dashboard shows one place at a time and cannot find a job by its id; this
reads every place's ids, then the jobs, a batch at a time.
"""

from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

from redis import Redis
from rq.exceptions import DeserializationError, NoSuchJobError
from rq.job import JOB_ID_PATTERN, Job

from blog import rq_internals
from blog.queue_admin import registries
from blog.queues import LAST_ERROR, QUEUE_NAMES, RETRY_MAX, TAGS, Queue

# Where a job can be, in the order a job moves through them. A retrying job is in the
# scheduled registry, as a scheduled one is, but has run before.
STATES = (
    "queued",
    "scheduled",
    "retrying",
    "started",
    "deferred",
    "failed",
    "finished",
    "canceled",
)
# Jobs read in one round trip: a job's hash is about half a kilobyte.
FETCH_BATCH = 500
# What a job shows as its function when its data cannot be read here.
UNREADABLE = "(unreadable)"


@dataclass
class FoundJob:
    """A job, where it was found, and what the pages show of it."""

    id: str
    function: str
    arguments: str  # as in a call: 0.5, 'hello', retries=2
    tags: list[str]
    state: str
    queue: str
    enqueued_at: datetime | None
    due: datetime | None  # scheduled and retrying jobs: when they go to their queue
    attempt: tuple[int, int] | None  # (n, m): the attempt running, next, or last, of m
    last_error: str | None  # the last line of its last failed attempt's error, if any
    job: Job = field(repr=False, compare=False)

    @property
    def when(self) -> datetime | None:
        """The time a list shows for it: when it is due, else when it was enqueued."""
        return self.due or self.enqueued_at

    def matches(self, text: str) -> bool:
        """Does ``text`` (lower-cased) occur in its id, function, arguments or a tag?"""
        values = (self.id, self.function, self.arguments, *self.tags)
        return any(text in value.lower() for value in values)


def tags_of(job: Job) -> list[str]:
    tags = job.meta.get(TAGS)
    return [tag for tag in tags if isinstance(tag, str)] if isinstance(tags, list) else []


def call_arguments(args, kwargs: dict) -> str:
    """The arguments as a call would spell them: ``0.5, 'hello', retries=2``."""
    return ", ".join([*map(repr, args), *(f"{name}={value!r}" for name, value in kwargs.items())])


def attempt_of(job: Job) -> tuple[int, int] | None:
    """Which attempt of how many: the one running, due next, or the last one made.

    A job enqueued with ``Retry(max=3)`` gets 4 attempts; RQ counts the retries left down
    after each failure, and the app keeps the ``max`` in the job's meta (``blog.queues``).
    Unknown for a job enqueued round the app with a ``Retry``.
    """
    if job.retries_left is None:
        return (1, 1)
    retry_max = job.meta.get(RETRY_MAX)
    if not isinstance(retry_max, int):
        return None
    return (retry_max - job.retries_left + 1, retry_max + 1)


def describe(job: Job, state: str, queue: str, due: float | None = None) -> FoundJob:
    try:
        function = job.func_name or ""
        arguments = call_arguments(job.args, job.kwargs)
    except DeserializationError:  # pickled by code this process cannot import
        function, arguments = UNREADABLE, ""
    if state == "scheduled" and job.started_at is not None:
        state = "retrying"
    last_error = job.meta.get(LAST_ERROR)
    return FoundJob(
        id=job.id,
        function=function,
        arguments=arguments,
        tags=tags_of(job),
        state=state,
        queue=queue,
        enqueued_at=job.enqueued_at or job.created_at,
        due=datetime.fromtimestamp(due, UTC) if due is not None else None,
        attempt=attempt_of(job),
        last_error=last_error if isinstance(last_error, str) else None,
        job=job,
    )


# Where each job is: (job id, state, queue, due time or None).
Place = tuple[str, str, str, float | None]


def places(connection: Redis, states: Iterable[str] = STATES) -> Iterator[Place]:
    """Every job id listed in ``states`` (of ``STATES``; "scheduled" stands for "retrying"
    too), queue by queue: a round trip per list. Registries are read as they are, without
    RQ's clean-up of expired entries (a job whose hash has gone is skipped later)."""
    wanted = set(states)
    if "retrying" in wanted:
        wanted.add("scheduled")
    seen = set()  # a job moving on as we read may be listed twice: once is enough
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=connection)
        listed = []
        if "queued" in wanted:
            listed += [(job_id, "queued", name, None) for job_id in queue.get_job_ids()]
        for state, registry in registries(queue).items():
            if state not in wanted:
                continue
            if state == "scheduled":
                due = rq_internals.due_times(registry)
                listed += [(job_id, state, name, at) for job_id, at in due.items()]
            else:
                job_ids = registry.get_job_ids(cleanup=False)
                listed += [(job_id, state, name, None) for job_id in job_ids]
        for place in listed:
            if place[0] not in seen:
                seen.add(place[0])
                yield place


def fetch_jobs(connection: Redis, job_ids: list[str]) -> Iterator[Job | None]:
    """The jobs with ``job_ids`` (None for one gone meanwhile), ``FETCH_BATCH`` per round
    trip (``Job.fetch_many``). A hash that a killed worker left half written makes RQ refuse
    its whole batch; such a batch is read again a job at a time."""
    for start in range(0, len(job_ids), FETCH_BATCH):
        batch = job_ids[start : start + FETCH_BATCH]
        try:
            yield from Job.fetch_many(batch, connection=connection)
        except NoSuchJobError:
            yield from (fetch_one(connection, job_id) for job_id in batch)


def fetch(connection: Redis, listed: list[Place]) -> Iterator[FoundJob]:
    """The jobs of ``listed``, described, skipping those gone meanwhile."""
    jobs = fetch_jobs(connection, [job_id for job_id, *_ in listed])
    for (_, state, queue, due), job in zip(listed, jobs, strict=True):
        if job is not None:
            yield describe(job, state, queue, due)


def fetch_one(connection: Redis, job_id: str) -> Job | None:
    try:
        return Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return None


def find(
    connection: Redis, text: str = "", tag: str = "", states: Iterable[str] = STATES
) -> list[FoundJob]:
    """The jobs in ``states`` whose id, function, arguments or tags contain ``text`` (any
    case), and that carry ``tag`` if given; newest (or soonest due) first. A job whose id is
    ``text`` exactly is found alone, in one round trip.

    Anything else reads every job RQ lists in ``states``: a round trip per queue and
    registry for the ids, then every job's hash, ``FETCH_BATCH`` per round trip, however few
    match, since the arguments are pickled and only Python can match them. That costs about
    0.6 kB from Redis and half a millisecond of this process's time per job (redis-py's
    parser and RQ's ``Job.restore`` take most of it): 20,000 demo jobs took 10 to 11 s and
    13 MB on a shared 2-core machine, where one job by id took 2 ms. Failed jobs
    stay a year (unless capped), finished ones ``result_ttl`` (500 s by default): on a big
    Redis, narrow the states, or find by id.
    """
    text = text.strip()
    states = [state for state in STATES if state in set(states)]
    if JOB_ID_PATTERN.fullmatch(text) and (exact := by_id(connection, text, states)):
        return [job for job in exact if not tag or tag in job.tags]
    found = [
        job
        for job in fetch(connection, list(places(connection, states)))
        if job.state in states and (not tag or tag in job.tags) and job.matches(text.lower())
    ]
    return sorted(found, key=lambda job: job.when or datetime.min.replace(tzinfo=UTC), reverse=True)


def by_ids(connection: Redis, job_ids: list[str]) -> list[FoundJob]:
    """The jobs with these ids, wherever they are or in no list at all, in the state their
    own status says; ids RQ could not have made are left out."""
    job_ids = [job_id for job_id in job_ids if JOB_ID_PATTERN.fullmatch(job_id)]
    jobs = fetch_jobs(connection, job_ids)
    return [describe(job, *status_and_due(job)) for job in jobs if job is not None]


def status_and_due(job: Job) -> tuple[str, str, float | None]:
    """A job's state, queue and due time, as its status says (a round trip if scheduled)."""
    state = job.get_status(refresh=False).value
    due = None
    if state == "scheduled" and job.origin in QUEUE_NAMES:
        with suppress(NoSuchJobError):  # else gone to its queue meanwhile
            registry = Queue(job.origin, connection=job.connection).scheduled_job_registry
            due = registry.get_scheduled_time(job.id)
    return state, job.origin, due.timestamp() if due else None


def by_id(connection: Redis, job_id: str, states: Iterable[str] = STATES) -> list[FoundJob]:
    """The job with this id, if it is in one of ``states``: a list of one, or empty."""
    return [job for job in by_ids(connection, [job_id]) if job.state in states]


def pending(connection: Redis, state: str) -> list[FoundJob]:
    """The jobs waiting in the scheduled registries: ``scheduled`` (never run) or
    ``retrying`` (failed, waiting for their next attempt), soonest due first."""
    jobs = fetch(connection, list(places(connection, [state])))
    return sorted(
        (job for job in jobs if job.state == state),
        key=lambda job: job.due or datetime.max.replace(tzinfo=UTC),
    )
