"""RQ job functions, and the app context they run in.

A job runs in a worker thread (or a work-horse RQ forks for it), far from any request, so it
needs a Flask app context to reach the database and config. ``in_app_context`` gives it one:
the current app's when there is one (tests, an inline call from a view), else one app per
process, created on first use (in the worker's supervisor, before it forks, so every worker
process inherits it). Each job pushes a context of its own, so each gets its own session.

A forked process (a worker process, a work-horse) must not talk over its parent's database
connections: two processes on one PostgreSQL connection corrupt each other's conversation.
So the app's engine drops the inherited pool in every child, at the fork itself, without
closing the parent's sockets, and the child opens connections of its own.
"""

import functools
import os
from contextlib import contextmanager

from flask import Flask, has_app_context
from rq import get_current_job

_process_app: Flask | None = None


def process_app() -> Flask:
    global _process_app
    if _process_app is None:
        from blog import create_app  # here, not at the top: blog imports the job functions

        _process_app = create_app(migrations=False)
        from blog.extensions import db

        with _process_app.app_context():
            engine = db.engine
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
    return _process_app


@contextmanager
def app_context():
    if has_app_context():
        yield
    else:
        with process_app().app_context():
            yield


def in_app_context(job):
    """Run the job function inside ``app_context()``."""

    @functools.wraps(job)
    def run(*args, **kwargs):
        with app_context():
            return job(*args, **kwargs)

    return run


def is_last_attempt() -> bool:
    """True unless this runs as a job (an RQ job, or one run inline) that has a retry left."""
    from blog.job_modes import inline_retries_left  # here: blog imports the job functions

    job = get_current_job()
    if job is not None:
        return not job.retries_left
    return not inline_retries_left()
