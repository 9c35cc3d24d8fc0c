"""The benchmark's job functions. Every worker under test imports them from here: the bench
runs each worker with the repository on ``PYTHONPATH``.

A job that must say when it ran pushes a record onto a Redis list named by the bench: the
job's id, what happened (``start`` or ``fail``), the time (``time.time()``, the same clock
the bench reads, as both run on one machine) and the process it ran in. The bench waits on
that list instead of polling the job, and trusts no worker's own bookkeeping for the times it
reports.
"""

import json
import os
import time

from rq import get_current_job


def noop() -> None:
    """Nothing at all: what is left is the worker's own cost per job."""


def stamp(key: str) -> None:
    """Record that this job started."""
    _record(key, "start")


def sleep_on_first_run(key: str, seconds: float) -> None:
    """Record the start; sleep on the first run only. A long job to kill mid-run, whose
    retry leaves the worker free at once for the jobs that come next."""
    _record(key, "start")
    if _run_number(key) == 1:
        time.sleep(seconds)


def auto_tag_post(post_id: int):
    """The app's ``workers.tagging.auto_tag_post``, imported as the app imports it.

    ``import workers.tagging`` in a fresh interpreter fails (``blog`` and ``workers.tagging``
    import each other), so a stock worker, which has not built the app first, cannot load the
    job by name; importing ``blog`` first works, and costs nothing once it is imported.
    """
    import blog  # noqa: F401
    from workers.tagging import auto_tag_post

    return auto_tag_post(post_id)


class FirstRunFails(Exception):
    """Raised by the first run of ``fail_first_run``, so that RQ schedules its retry."""


def fail_first_run(key: str) -> None:
    """Fail on the first run (recording when), record the start of the retry."""
    if _run_number(key) == 1:
        _record(key, "fail")
        raise FirstRunFails("failing on purpose, to be retried")
    _record(key, "start")


def _run_number(key: str) -> int:
    """1 on this job's first run, 2 on the next, ..."""
    job = get_current_job()
    return job.connection.incr(f"{key}:runs:{job.id}")


def _record(key: str, event: str) -> None:
    at = time.time()
    job = get_current_job()
    record = {"job": job.id, "event": event, "at": at, "pid": os.getpid()}
    job.connection.rpush(key, json.dumps(record))
