"""What each job function costs, minute by minute: kept in Redis by the worker, read by the
admin's metrics page and by ``/metrics``.

For each job function and queue, and each minute, a record of counters: executions,
failures, the total execution time, a histogram of execution times, and the total and a
histogram of the queue wait (from when the job was put on its queue to when it started).
The records of the last 72 hours are kept (each key expires); each function also has an
all-time record per outcome, for Prometheus, whose counters must never go down.

- **Execution time** is the worker's, from the job's start to its end as the log line per
  job reports it (RQ's bookkeeping around the job included).
- **Wait** counts from ``Job.enqueued_at`` to ``Job.started_at``. RQ sets ``enqueued_at``
  again whenever a job goes onto a queue: a retry, or a scheduled job that the scheduler
  moves onto its queue when it is due (``workers.scheduler`` wakes up at the due time), so
  a scheduled job's wait counts from its due time, within the scheduler's lag. A thread
  worker's job that RQ puts straight back on its queue as it ends (a retry without a delay,
  an interrupted job) has had its ``enqueued_at`` overwritten by then: its wait is unknown
  and left out, which is why waits are counted apart from executions.
- **Releases**: the first job a worker of a new release ends marks when that release came
  out (``RELEASES_KEY``), for the deploy marks of the metrics page's charts.
- **Histograms** share fixed log-scale buckets (``BOUNDS``), so records add up across
  minutes, workers and processes; percentiles are read from them as Prometheus's
  ``histogram_quantile`` does, by interpolating within a bucket.

A record is a Redis string of fixed-width counters that one ``BITFIELD`` command adds to, so
the worker sends a job's metrics with its other counts in one round trip
(``workers.worker``). A minute's record takes ``MINUTE_RECORD_BYTES`` bytes: see the README
for what a function costs per day.
"""

import functools
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from redis import Redis
from redis.client import Pipeline
from rq.job import Job

from blog import config

KEY_PREFIX = "blog:metrics"
INDEX_KEY = f"{KEY_PREFIX}:functions"  # "queue:function" → when it last ran (a sorted set)
RELEASES_KEY = f"{KEY_PREFIX}:releases"  # release → when a worker of it first ended a job
KEEP_RELEASES = 50  # the newest; older ones are dropped as new ones come
KEEP = timedelta(hours=72)
FINISHED = "finished"
FAILED = "failed"

# The upper bounds of the histogram buckets, in seconds (1, 2.5, 5 per power of ten); a last
# bucket holds what is slower than the last bound.
BOUNDS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500,
)  # fmt: skip
BUCKETS = len(BOUNDS) + 1

WINDOWS = {"1h": 60, "8h": 8 * 60, "24h": 24 * 60, "72h": 72 * 60}  # in minutes
READ_BATCH = 1000  # keys per MGET


@dataclass(frozen=True)
class Layout:
    """Where each counter of a record is: two sums of microseconds (64-bit), then the counts
    (``executions``, ``failures``, ``waits``, the time buckets, the wait buckets)."""

    count_type: str  # a BITFIELD type: "u32" for a minute, "i64" for an all-time record

    @property
    def count_bits(self) -> int:
        return int(self.count_type[1:])

    def count_offset(self, index: int) -> int:
        return 128 + index * self.count_bits

    @property
    def size(self) -> int:
        return 16 + (3 + 2 * BUCKETS) * self.count_bits // 8

    @property
    def struct_format(self) -> str:
        """The record as ``struct`` reads it: big-endian, as BITFIELD writes it."""
        count = "I" if self.count_type == "u32" else "q"
        return f">qq{3 + 2 * BUCKETS}{count}"


MINUTE = Layout("u32")
ALL_TIME = Layout("i64")
MINUTE_RECORD_BYTES = MINUTE.size
EXECUTIONS, FAILURES, WAITS, TIME_BUCKETS = 0, 1, 2, 3
WAIT_BUCKETS = TIME_BUCKETS + BUCKETS


def bucket(seconds: float) -> int:
    """The index of the histogram bucket ``seconds`` falls in."""
    for index, bound in enumerate(BOUNDS):
        if seconds <= bound:
            return index
    return len(BOUNDS)


def minute_key(queue: str, function: str, moment: datetime) -> str:
    return f"{KEY_PREFIX}:minute:{queue}:{function}:{moment.astimezone(UTC):%Y-%m-%dT%H:%M}"


def all_time_key(queue: str, function: str, outcome: str) -> str:
    return f"{KEY_PREFIX}:all:{outcome}:{queue}:{function}"


def wait_of(job: Job) -> float | None:
    """Seconds ``job`` waited on its queue before this execution started, if known."""
    if job.enqueued_at is None or job.started_at is None or job.enqueued_at > job.started_at:
        return None
    return (job.started_at - job.enqueued_at).total_seconds()


def add_execution(
    pipe: Pipeline,
    function: str,
    queue: str,
    failed: bool,
    duration: float,
    wait: float | None,
    at: datetime | None = None,
) -> None:
    """Add the commands that record one execution to ``pipe``: the worker sends them in the
    same round trip as the stats page's counts (``blog.job_stats``)."""
    at = at or datetime.now(UTC)
    key = minute_key(queue, function, at)
    _add(pipe, key, MINUTE, failed, duration, wait)
    pipe.expire(key, KEEP)
    outcome = FAILED if failed else FINISHED
    _add(pipe, all_time_key(queue, function, outcome), ALL_TIME, failed, duration, wait)
    # GT (Redis 6.2): a worker whose clock is behind never moves a function's last run back.
    pipe.zadd(INDEX_KEY, {f"{queue}:{function}": at.timestamp()}, gt=True)
    if release := this_release():  # the first job of a new release marks when it came out
        pipe.zadd(RELEASES_KEY, {release: at.timestamp()}, nx=True)
        pipe.zremrangebyrank(RELEASES_KEY, 0, -KEEP_RELEASES - 1)


@functools.cache
def this_release() -> str | None:
    """The release this process runs (``blog.config.release``), looked up once."""
    return config.release()


def _add(
    pipe: Pipeline, key: str, layout: Layout, failed: bool, duration: float, wait: float | None
) -> None:
    command = pipe.bitfield(key).overflow("SAT")
    command.incrby("i64", 0, round(duration * 1_000_000))
    command.incrby(layout.count_type, layout.count_offset(EXECUTIONS), 1)
    command.incrby(layout.count_type, layout.count_offset(TIME_BUCKETS + bucket(duration)), 1)
    if failed:
        command.incrby(layout.count_type, layout.count_offset(FAILURES), 1)
    if wait is not None:
        command.incrby("i64", 64, round(wait * 1_000_000))
        command.incrby(layout.count_type, layout.count_offset(WAITS), 1)
        command.incrby(layout.count_type, layout.count_offset(WAIT_BUCKETS + bucket(wait)), 1)
    command.execute()  # on a pipeline, this queues the BITFIELD command


# --- Reading -----------------------------------------------------------------------------------


@dataclass
class Counts:
    """A record's counters, or the sum of several."""

    time_total: float = 0.0  # seconds
    wait_total: float = 0.0
    executions: int = 0
    failures: int = 0
    waits: int = 0
    time_buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    wait_buckets: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    @classmethod
    def parse(cls, raw: bytes | None, layout: Layout) -> "Counts":
        if not raw:
            return cls()
        # BITFIELD makes the string only as long as the last counter it wrote to.
        time_us, wait_us, *counts = struct.unpack(
            layout.struct_format, raw.ljust(layout.size, b"\0")
        )
        return cls(
            time_us / 1e6,
            wait_us / 1e6,
            *counts[:TIME_BUCKETS],  # executions, failures, waits
            counts[TIME_BUCKETS:WAIT_BUCKETS],
            counts[WAIT_BUCKETS:],
        )

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(
            self.time_total + other.time_total,
            self.wait_total + other.wait_total,
            self.executions + other.executions,
            self.failures + other.failures,
            self.waits + other.waits,
            [a + b for a, b in zip(self.time_buckets, other.time_buckets, strict=True)],
            [a + b for a, b in zip(self.wait_buckets, other.wait_buckets, strict=True)],
        )

    @property
    def failure_rate(self) -> float | None:
        return self.failures / self.executions if self.executions else None

    @property
    def average_time(self) -> float | None:
        return self.time_total / self.executions if self.executions else None

    @property
    def average_wait(self) -> float | None:
        return self.wait_total / self.waits if self.waits else None

    def time_percentile(self, q: float) -> float | None:
        return percentile(self.time_buckets, q)

    def wait_percentile(self, q: float) -> float | None:
        return percentile(self.wait_buckets, q)


def total(records: Iterable[Counts]) -> Counts:
    return sum(records, Counts())


def percentile(buckets: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0.95 for p95) of a histogram, interpolated within its bucket; in
    the last bucket, which has no upper bound, the last bound (a lower limit)."""
    count = sum(buckets)
    if not count:
        return None
    rank = q * count
    seen = 0
    for index, in_bucket in enumerate(buckets):
        if in_bucket and seen + in_bucket >= rank:
            if index == len(BOUNDS):
                return BOUNDS[-1]
            lower = BOUNDS[index - 1] if index else 0.0
            return lower + (BOUNDS[index] - lower) * (rank - seen) / in_bucket
        seen += in_bucket
    return BOUNDS[-1]


@dataclass
class Function:
    queue: str
    name: str
    last_run: datetime


def functions(connection: Redis, since: datetime | None = None) -> list[Function]:
    """The job functions that ran since ``since`` (all of them by default), by queue and name."""
    low = since.timestamp() if since else "-inf"
    rows = connection.zrangebyscore(INDEX_KEY, low, "+inf", withscores=True)
    found = []
    for member, score in rows:
        queue, _, name = member.decode().partition(":")
        found.append(Function(queue, name, datetime.fromtimestamp(score, UTC)))
    return sorted(found, key=lambda f: (f.name, f.queue))


def minutes(
    connection: Redis, queue: str, function: str, count: int, now: datetime | None = None
) -> list[tuple[datetime, Counts]]:
    """The records of ``function`` on ``queue`` for the last ``count`` minutes, oldest first,
    this minute included."""
    now = (now or datetime.now(UTC)).replace(second=0, microsecond=0)
    starts = [now - timedelta(minutes=n) for n in reversed(range(count))]
    keys = [minute_key(queue, function, start) for start in starts]
    raws = []
    for at in range(0, len(keys), READ_BATCH):
        raws.extend(connection.mget(keys[at : at + READ_BATCH]))
    return [(start, Counts.parse(raw, MINUTE)) for start, raw in zip(starts, raws, strict=True)]


def windows(records: Sequence[tuple[datetime, Counts]]) -> dict[str, Counts]:
    """The sums of the last hour, 8 hours, 24 hours and 72 hours of ``records`` (the newest
    last, a minute each)."""
    return {
        name: total(counts for _, counts in records[-length:]) for name, length in WINDOWS.items()
    }


def slots(records: Sequence[tuple[datetime, Counts]], count: int) -> list[tuple[datetime, Counts]]:
    """``records`` (a minute each, oldest first) summed into ``count`` slots of equal length,
    each with the start of its first minute."""
    size = max(1, len(records) // count)
    return [
        (records[at][0], total(counts for _, counts in records[at : at + size]))
        for at in range(0, len(records), size)
    ]


def all_time(connection: Redis, queue: str, function: str) -> dict[str, Counts]:
    """``function``'s all-time record on ``queue``, by outcome."""
    keys = [all_time_key(queue, function, outcome) for outcome in (FINISHED, FAILED)]
    finished, failed = connection.mget(keys)
    return {FINISHED: Counts.parse(finished, ALL_TIME), FAILED: Counts.parse(failed, ALL_TIME)}


def releases(connection: Redis, since: datetime) -> list[tuple[str, datetime]]:
    """The releases whose workers started ending jobs since ``since``, oldest first."""
    rows = connection.zrangebyscore(RELEASES_KEY, since.timestamp(), "+inf", withscores=True)
    return [(name.decode(), datetime.fromtimestamp(score, UTC)) for name, score in rows]
