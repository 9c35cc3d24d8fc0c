"""Count the round trips this process makes to Redis, for tests and benchmarks.

A round trip is one write of commands to a connection: a single command, or a whole
pipeline (redis-py sends a pipeline's commands in one write, then reads every reply). Every
client of the process is counted, fakeredis's too, since its connections are redis-py's.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from unittest import mock

from redis.connection import AbstractConnection


@dataclass
class RoundTrips:
    count: int = 0


@contextmanager
def counting_round_trips() -> Iterator[RoundTrips]:
    """``with counting_round_trips() as trips: ...``, then read ``trips.count``."""
    trips = RoundTrips()
    send = AbstractConnection.send_packed_command

    def counted(self, command, check_health=True):
        trips.count += 1
        return send(self, command, check_health)

    with mock.patch.object(AbstractConnection, "send_packed_command", counted):
        yield trips
