"""What RQ and the app keep in Redis, by kind: how many keys, how many entries, how much memory.

Like resque-web's keys page, for ``flask jobs redis`` and the admin stats page, but read-only
and without values: job arguments, results and tracebacks are user data, so only the key
names are read (to sort them into kinds), with each key's type, length and memory.
"""

from dataclasses import dataclass

from redis import Redis
from redis.exceptions import ResponseError

from blog import dead_jobs, job_metrics, job_stats, page_cache, rq_internals, throttle
from blog.queue_admin import PAUSED_KEY

# First match wins, so a longer prefix comes before a shorter one it starts with.
KINDS = (
    *rq_internals.KEY_KINDS,
    (f"{job_stats.KEY_PREFIX}:", "job counters"),  # this app's processed and failed totals
    (f"{job_metrics.KEY_PREFIX}:", "metrics"),  # per job function and web endpoint
    (PAUSED_KEY, "paused queues"),  # flask jobs pause
    (dead_jobs.TRIMMED_KEY, "dead-job cap"),  # what trim_dead_jobs removed
    (f"{throttle.KEY_PREFIX}:", "throttles"),  # when each throttle last let a job start
    (job_stats.BLOG_STATS_KEY, "blog figures"),  # what refresh_stats worked out
    (job_stats.REMINDERS_CHECKED_KEY, "reminders checked"),  # requeue_stranded_work's mark
    (page_cache.VERSION_KEY, "page cache"),  # the posts' version, for the front page
    ("LIMITS:", "rate limits"),  # Flask-Limiter's signup counts
)
OTHER = "other"

# How each type's entries are counted; a string (or any other type) is one entry.
LENGTH_COMMANDS = {
    "list": "LLEN",
    "hash": "HLEN",
    "set": "SCARD",
    "zset": "ZCARD",
    "stream": "XLEN",
}
SCAN_BATCH = 500


@dataclass
class KindStats:
    kind: str
    keys: int = 0
    entries: int = 0  # list items, hash fields, set members, stream entries; 1 per string
    memory: int = 0  # bytes, as MEMORY USAGE estimates them


@dataclass
class Keyspace:
    kinds: list[KindStats]
    used_memory: int | None  # the whole server's, from INFO (None where INFO is refused)
    keys: int


def kind_of(key: str) -> str:
    for prefix, kind in KINDS:
        if key.startswith(prefix):
            return kind
    return OTHER


def keyspace(connection: Redis) -> Keyspace:
    """Every key of the app's Redis database, grouped by kind, in the order of ``KINDS``.

    SCAN walks the keys in batches, without blocking Redis as KEYS would; each batch's types,
    lengths and memory take two round trips.
    """
    kinds: dict[str, KindStats] = {}
    batch: list[bytes] = []
    for key in connection.scan_iter(count=SCAN_BATCH):
        batch.append(key)
        if len(batch) == SCAN_BATCH:
            _add_batch(connection, batch, kinds)
            batch = []
    _add_batch(connection, batch, kinds)
    try:
        used_memory = int(connection.info("memory")["used_memory"])
    except ResponseError:  # some hosted Redis plans (and fakeredis) refuse INFO
        used_memory = None
    order = [kind for _, kind in KINDS] + [OTHER]
    ordered = sorted(kinds.values(), key=lambda k: order.index(k.kind))
    return Keyspace(ordered, used_memory, sum(k.keys for k in ordered))


def _add_batch(connection: Redis, batch: list[bytes], kinds: dict[str, KindStats]) -> None:
    if not batch:
        return
    with connection.pipeline(transaction=False) as pipe:
        for key in batch:
            pipe.type(key)
        types = [_text(t) for t in pipe.execute()]
    with connection.pipeline(transaction=False) as pipe:
        for key, key_type in zip(batch, types, strict=True):
            pipe.execute_command(LENGTH_COMMANDS.get(key_type, "EXISTS"), key)
            pipe.memory_usage(key)
        sizes = pipe.execute(raise_on_error=False)
    for i, (key, key_type) in enumerate(zip(batch, types, strict=True)):
        if key_type == "none":  # expired between SCAN and TYPE
            continue
        entries, memory = sizes[2 * i], sizes[2 * i + 1]
        kind = kind_of(_text(key))
        stats = kinds.setdefault(kind, KindStats(kind))
        stats.keys += 1
        stats.entries += entries if isinstance(entries, int) else 0
        stats.memory += memory if isinstance(memory, int) else 0


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def human_bytes(count: int | None) -> str:
    """1234567 → "1.2 MB"."""
    if count is None:
        return "unknown"
    if count < 1000:
        return f"{count} B"
    size = count / 1000
    for unit in ("kB", "MB"):
        if size < 1000:
            return f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
