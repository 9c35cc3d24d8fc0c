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
    time.sleep(delay)
    if fail_rate and random.random() < fail_rate:
        raise DemoFailure(f"demo job failed on purpose (fail rate {fail_rate:.0%})")
    log.info("demo: done: %s", message)
    return message
