"""Where a checked job goes when ``JOBS_MODE`` is not ``redis``, as Sidekiq::Testing does.

- ``fake``: the job is recorded in ``FakeJobs`` (``app.extensions["fake_jobs"]``) and nothing
  reaches Redis. A test asserts on what was enqueued: queue, function, arguments, options.
- ``inline``: the job runs at once, in this process, where it was enqueued (for
  ``enqueue_after_commit``: right after the commit). It runs in an app context of its own, so
  with a database session of its own, as in a worker. A ``Retry`` is honoured without its
  waits: a failed attempt is run again at once while retries are left, and the last
  attempt's exception is raised to whoever enqueued (logged instead after a commit, see
  ``blog.queues``). A ``delay`` is not waited for either. ``is_last_attempt()`` (in
  ``workers``) knows which attempt is running.

RQ's own ``Queue(is_async=False)`` is not used for inline mode: it runs a job once and
ignores its ``Retry``.
"""

import logging
import uuid
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

if TYPE_CHECKING:
    from blog.queues import JobRequest

log = logging.getLogger(__name__)

JOBS_MODES = ("redis", "inline", "fake")

_inline_retries_left: ContextVar[int | None] = ContextVar("inline_retries_left", default=None)


@dataclass
class FakeJob:
    """A job that was enqueued in ``fake`` or ``inline`` mode; ``id`` is its ``job_id`` option
    or a new one, ``tags`` what it was tagged with."""

    id: str
    queue: str
    func: Any
    args: tuple
    kwargs: dict = field(default_factory=dict)
    delay: timedelta | None = None
    options: dict = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    result: Any = None
    request: "JobRequest | None" = field(default=None, repr=False, compare=False)

    @property
    def func_name(self) -> str:
        return f"{self.func.__module__}.{self.func.__qualname__}"


def fake_job(request: "JobRequest") -> FakeJob:
    return FakeJob(
        id=request.options.get("job_id") or uuid.uuid4().hex,
        queue=request.queue,
        func=request.func,
        args=request.args,
        kwargs=request.kwargs,
        delay=request.delay,
        options={k: v for k, v in request.options.items() if k != "job_id"},
        tags=request.tags,
        request=request,
    )


class FakeJobs:
    """The jobs enqueued in ``fake`` mode, oldest first: ``Sidekiq::Worker.jobs``."""

    def __init__(self, app: Flask):
        self.app = app
        self.jobs: list[FakeJob] = []

    def record(self, request: "JobRequest") -> FakeJob:
        job = fake_job(request)
        self.jobs.append(job)
        return job

    def on(self, queue: str) -> list[FakeJob]:
        """The jobs enqueued on ``queue``."""
        return [job for job in self.jobs if job.queue == queue]

    def of(self, func) -> list[FakeJob]:
        """The jobs that would call ``func``."""
        return [job for job in self.jobs if job.func is func]

    def clear(self) -> None:
        self.jobs.clear()

    def drain(self) -> list[FakeJob]:
        """Run the recorded jobs inline, oldest first, and those they enqueue, until none is
        left (``Sidekiq::Worker.drain_all``); return what ran."""
        ran = []
        with self.app.app_context():
            while self.jobs:
                ran.append(run_inline(self.jobs.pop(0).request))
        return ran


def run_inline(request: "JobRequest") -> FakeJob:
    """Run the job here and now, honouring its ``Retry`` without the waits."""
    job = fake_job(request)
    retry = request.options.get("retry")
    retries_left = retry.max if retry else 0
    while True:
        token = _inline_retries_left.set(retries_left)
        try:
            # An app context of its own: a fresh database session, as a work-horse has.
            with current_app.app_context():
                job.result = request.func(*request.args, **request.kwargs)
            return job
        except Exception as error:
            if not retries_left:
                raise
            log.info("job %s %s failed inline (%s); retrying at once", job.id, job.func_name, error)
            retries_left -= 1
        finally:
            _inline_retries_left.reset(token)


def inline_retries_left() -> int | None:
    """The retries left for the job running inline, or None when no job runs inline."""
    return _inline_retries_left.get()
