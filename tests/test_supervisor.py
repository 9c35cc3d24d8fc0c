"""What the worker's supervisor does when one of its processes ends (no processes are forked
here: the supervisor is handed each exit as ``os.waitpid`` would report it)."""

import time

import pytest

from blog.config import EXIT_CONFIG_ERROR
from blog.queue_admin import QUIET_KEY
from workers.process import EXIT_RECYCLE
from workers.supervisor import Child, Supervisor


@pytest.fixture
def supervisor(app, monkeypatch):
    supervisor = Supervisor(app)
    spawned = []
    monkeypatch.setattr(supervisor, "_spawn", spawned.append)
    supervisor.spawned = spawned
    return supervisor


def test_a_process_failing_on_the_configuration_stops_everything(supervisor):
    supervisor._after_exit(
        101, Child(0, time.monotonic(), "host.101.boot."), code=EXIT_CONFIG_ERROR
    )
    assert supervisor.stopping
    assert supervisor.exit_code == EXIT_CONFIG_ERROR
    assert supervisor.spawned == [] and supervisor.restarts == []


def test_a_recycled_process_is_replaced_at_once(supervisor):
    supervisor._after_exit(101, Child(1, time.monotonic(), "host.101.boot."), code=EXIT_RECYCLE)
    assert supervisor.spawned == [1]
    assert not supervisor.stopping


def test_a_process_that_keeps_crashing_waits_longer_each_time(supervisor):
    pauses = []
    for pid in (101, 102, 103, 104):
        supervisor._after_exit(pid, Child(0, time.monotonic(), "host.pid.boot."), code=-9)
        when, _ = supervisor.restarts.pop()
        pauses.append(round(when - time.monotonic()))
    assert pauses == [1, 2, 4, 8]
    # One that ran for a while before it crashed starts over from a short pause.
    supervisor._after_exit(105, Child(0, time.monotonic() - 3600, "host.105.boot."), code=-9)
    assert supervisor.crashes == 0


def test_a_process_quieted_from_the_admin_page_is_replaced_by_a_quiet_one(app, supervisor):
    connection = app.extensions["redis"]
    connection.sadd(QUIET_KEY, "host.101.boot.", "host.102.boot.")
    supervisor._after_exit(101, Child(1, time.monotonic(), "host.101.boot."), code=EXIT_RECYCLE)
    assert supervisor.spawned == [1]
    assert supervisor.quiet_slots == {1}  # _spawn starts the next process of slot 1 quiet
    assert connection.smembers(QUIET_KEY) == {b"host.102.boot."}  # the gone one forgotten
    supervisor._after_exit(103, Child(0, time.monotonic(), "host.103.boot."), code=EXIT_RECYCLE)
    assert supervisor.quiet_slots == {1}
