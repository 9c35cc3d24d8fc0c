"""Job functions for tests: importable by the worker, like the app's own."""

import os
import sys
import time

from rq import get_current_job
from sqlalchemy import text

from blog.extensions import db
from workers import in_app_context
from workers.demo import nap


class Failure(Exception):
    """Raised on purpose."""


def fail_with(message: str) -> None:
    raise Failure(message)


def record_start(key: str) -> None:
    """Note when this run started, in the Redis list ``key``."""
    job = get_current_job()
    job.connection.rpush(key, f"{job.id} {time.time()}")


def slow_and_recorded(key: str, seconds: float) -> None:
    """Note each start in ``key``, then work for ``seconds``."""
    record_start(key)
    nap(seconds)


def hog(megabytes_per_step: int) -> str:
    """Allocate memory until the worker steps in; on a second run, just finish."""
    if get_current_job().meta.get("interruptions"):
        return "finished on a fresh process"
    hoard = []
    while True:
        hoard.append(bytearray(megabytes_per_step * 2**20))
        nap(0.05)


@in_app_context
def session_probe(key: str, seconds: float) -> None:
    """Note this job's database session and connection while it runs for ``seconds``."""
    connection = db.session.connection()
    if connection.dialect.name == "postgresql":
        backend = connection.execute(text("SELECT pg_backend_pid()")).scalar()
    else:
        backend = id(connection.connection.dbapi_connection)
    nap(seconds)
    get_current_job().connection.rpush(key, f"{os.getpid()} {id(db.session())} {backend}")
    db.session.rollback()


def swallow_exceptions(key: str, seconds: float) -> None:
    """Work for ``seconds`` the way much job code is written: every error caught and ignored."""
    record_start(key)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:  # noqa: SIM105 (written as such jobs are)
            nap(0.1)
        except Exception:
            pass


def ignore_interrupts(key: str, seconds: float) -> None:
    """Run for ``seconds`` whatever is raised in it: a job no interruption stops."""
    record_start(key)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:  # noqa: SIM105 (written as such jobs are)
            nap(0.1)
        except BaseException:
            pass


def noop() -> None:
    """Nothing: what a worker costs a job is all there is to measure."""


def modules_loaded(prefix: str) -> list[str]:
    """The modules whose names start with ``prefix`` that the process running it has loaded."""
    return sorted(name for name in sys.modules if name.startswith(prefix))
