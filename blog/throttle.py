"""Throttles: at most so many job starts a period for one queue or one job function, such as
what an SMTP provider allows (``MAIL_RATE_LIMIT=10/second``, for the ``mailers`` queue), across
every worker process on every machine. A job over the rate waits; none fails for it.

How: jobs start evenly spaced, ``period / count`` apart (``10/second``: one every tenth of a
second, never ten at once), which no window of one period can catch exceeding the count.
Each throttle keeps two moments in Redis, updated in one atomic step (a Lua script, on
Redis's own clock, so the machines' clocks do not matter): when a job last started, and the
next moment free to reserve. A worker that takes a throttled job asks to start it:

- if the spacing allows it now, it starts;
- else the job reserves the next free moment and is put in RQ's scheduled registry until
  then, noting the reservation in its meta. It waits there costing nothing (no worker spins
  on it), and jobs keep the order they were taken in.

A job back at its moment starts if the spacing still allows it, without reserving again; if a
job before it started late (the scheduler moves due jobs every tenth of a second), it waits
the few milliseconds more that keep the spacing, and only it does. The spacing is between the
moments workers take the jobs; each function starts after its worker's few round trips for
it, which vary by some milliseconds.

RQ 3's ``RateLimit`` is not used: it limits how many jobs of a key are queued or running at
once (concurrency), not how many start a second. Ten quick sends at a concurrency of one can
still go out within a tenth of a second, which a provider that counts messages a second would
refuse. Use it where the limit is "at most N at once", which this is not.

One throttle per job: its function's if it has one, else its queue's.
"""

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from limits import parse

KEY_PREFIX = "blog:throttle"
# The meta key of a job that has reserved a moment.
RESERVED = "throttle_reserved"

_NAME = re.compile(r"[A-Za-z_][\w.]*")

# KEYS[1]: the throttle's hash (last: when a job last started; free: the next moment free to
# reserve). ARGV[1]: seconds between two starts; ARGV[2]: 1 for a job back at its reserved
# moment. Returns when the job may start and the time now, on Redis's clock (as strings:
# Redis would cut a Lua number to an integer). The job starts now when the two are equal.
_ASK = """
local time = redis.call('TIME')
local now = tonumber(time[1]) + tonumber(time[2]) / 1000000
local interval = tonumber(ARGV[1])
local last = tonumber(redis.call('HGET', KEYS[1], 'last') or '-1e12')
local free = tonumber(redis.call('HGET', KEYS[1], 'free') or '0')
local moment = math.max(now, last + interval)
if ARGV[2] ~= '1' then
    moment = math.max(moment, free)
    free = moment + interval
end
if moment <= now then
    moment = now
    last = now
    free = math.max(free, now + interval)
end
redis.call('HSET', KEYS[1], 'last', string.format('%.6f', last),
           'free', string.format('%.6f', free))
redis.call('PEXPIRE', KEYS[1], math.ceil((free - now) * 1000) + 1000)
return {string.format('%.6f', moment), string.format('%.6f', now)}
"""


class ThrottleError(ValueError):
    """A throttle setting the app cannot use."""


@dataclass(frozen=True)
class Throttle:
    name: str  # a queue, or a job function's dotted name
    count: int
    seconds: float

    @property
    def interval(self) -> float:
        return self.seconds / self.count

    @property
    def key(self) -> str:
        return f"{KEY_PREFIX}:{self.name}"

    def __str__(self) -> str:
        return f"{self.name}={self.count}/{self.seconds:g}s"


def parse_rate(name: str, rate: str) -> Throttle:
    """``rate`` as ``limits`` writes it (``10/second``, ``600 per 2 minutes``) for ``name``."""
    try:
        item = parse(rate)
    except ValueError:
        raise ThrottleError(f"{rate!r} is not a rate like 10/second or 600 per minute") from None
    if item.amount < 1:
        raise ThrottleError(f"{rate!r} lets no job run: pause the queue instead")
    return Throttle(name, item.amount, float(item.get_expiry()))


def parse_throttles(value: str, queue_names) -> dict[str, Throttle]:
    """``JOB_RATE_LIMITS``: ``name=rate`` pairs separated by ``;``, each name a queue or a job
    function's dotted name (``workers.mailers.send_email``)."""
    throttles = {}
    for part in filter(None, (part.strip() for part in value.split(";"))):
        name, sep, rate = (piece.strip() for piece in part.partition("="))
        if not sep or not _NAME.fullmatch(name):
            raise ThrottleError(f"{part!r} is not like mailers=10/second")
        if "." not in name and name not in queue_names:
            raise ThrottleError(
                f"{name!r} is neither a queue ({', '.join(queue_names)}) nor a job function's "
                "dotted name"
            )
        throttles[name] = parse_rate(name, rate)
    return throttles


def throttle_for(throttles: dict[str, Throttle], func_name: str, queue: str) -> Throttle | None:
    return throttles.get(func_name) or throttles.get(queue)


def ask(connection, throttle: Throttle, reserved: bool = False) -> tuple[float, float]:
    """When a job of ``throttle`` may start, and the time now (timestamps on Redis's clock):
    the same if it starts now, which this records. A job that must wait gets the next free
    moment, reserved; one back at its ``reserved`` moment does not reserve another."""
    script = connection.register_script(_ASK)
    moment, now = script(keys=[throttle.key], args=[repr(throttle.interval), int(reserved)])
    return float(moment), float(now)


def run_at(connection, throttles: dict[str, Throttle], job) -> datetime | None:
    """When ``job``, just taken off its queue, may start: None for now; else the moment it
    must wait for, noted in its meta (which the caller saves as it schedules the job)."""
    throttle = throttle_for(throttles, job.func_name, job.origin)
    if throttle is None:
        return None
    reserved = RESERVED in job.meta
    moment, now = ask(connection, throttle, reserved)
    if moment <= now:
        if reserved:
            del job.meta[RESERVED]
            job.save_meta()  # a retry of it must wait its turn again
        return None
    job.meta[RESERVED] = True
    # The scheduler compares with this machine's clock: wait as long as Redis's clock says.
    return datetime.now(UTC) + timedelta(seconds=moment - now)
