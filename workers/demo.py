"""The lesson job: it sleeps, logs and returns its message, or fails when told to."""

import logging
import random
import time

log = logging.getLogger(__name__)


class DemoFailure(Exception):
    """Raised on purpose, to show failed jobs, retries and the failed registry."""


def demo(delay: float, message: str, fail_rate: float = 0.0) -> str:
    """Sleep ``delay`` seconds, log ``message`` and return it; fail with ``fail_rate`` odds."""
    log.info("demo: working for %.1fs on %r", delay, message)
    nap(delay)
    if fail_rate and random.random() < fail_rate:
        raise DemoFailure(f"demo job failed on purpose (fail rate {fail_rate:.0%})")
    log.info("demo: done: %s", message)
    return message


def nap(seconds: float, step: float = 0.1) -> None:
    """``time.sleep`` in short steps. A job running in a thread can only be stopped (for its
    timeout, a stop command or a shutdown) between Python instructions, and one long sleep is
    a single instruction; a real job's network calls need timeouts for the same reason."""
    end = time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(step, left))
