"""The recurring jobs on a large database (``--rows recurring``): what ``requeue_stranded_work``
and ``refresh_stats`` cost each minute, in time and in Redis round trips, with nothing stranded.

For each database the bench makes an empty one, migrates it, starts a Redis server of its
own, and runs ``python -m bench.recurring`` in the environment a worker gets. That process
writes the large blog (``bench.large_blog``), then calls each job directly, in an app
context, as a test does: once to warm the caches up (for ``requeue_stranded_work`` that is
also its first run, with no mark of how far it checked in Redis yet), then ``RUNS`` times,
timed, and once more counting its round trips (in the process) and its commands (Redis's own
count, ``INFO commandstats``). It prints the figures as JSON.
"""

import json
import statistics
import subprocess
import sys
import time

from bench.databases import PostgresDatabases, SQLiteDatabases, migrate
from bench.large_blog import Size
from bench.processes import ROOT, worker_env
from bench.report import ERROR, RECURRING_LINES, cell_text
from devtools.embedded_redis import EmbeddedRedis
from devtools.redis_round_trips import counting_round_trips

DATABASES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
RUNS = 5


def run(settings) -> tuple[dict, list[str]]:
    """Both jobs on each database: ``results[line][database]``, and the notes."""
    results: dict[str, dict] = {}
    notes = []
    for kind in DATABASES:
        print(f"recurring / {kind} ...", file=sys.stderr)
        try:
            figures = measure(settings, kind)
        except Exception as error:
            notes.append(f"{kind}, recurring: error: {type(error).__name__}: {error}")
            values = dict.fromkeys((line.name for line in RECURRING_LINES), ERROR)
        else:
            notes.append(
                f"{kind}, recurring: {figures['size']['posts']:,} posts, "
                f"{figures['size']['recent_users']:,} signups in the last day, written in "
                f"{figures['seed_seconds']:.0f} s"
            )
            values = lines(figures)
        for line in RECURRING_LINES:
            results.setdefault(line.name, {})[kind] = values[line.name]
            text = cell_text(line, values[line.name])
            print(f"  recurring / {kind}: {line.name} {text}", file=sys.stderr)
    return results, notes


def lines(figures: dict) -> dict:
    requeue, stats = figures["requeue_stranded_work"], figures["refresh_stats"]
    return {
        "requeue_ms": requeue["seconds"] * 1000,
        "requeue_round_trips": requeue["round_trips"],
        "requeue_commands": requeue["commands"],
        "requeue_first_ms": requeue["first_seconds"] * 1000,
        "stats_ms": stats["seconds"] * 1000,
        "stats_round_trips": stats["round_trips"],
    }


def measure(settings, kind: str) -> dict:
    """Write the large blog into a new database of ``kind``, and measure both jobs on it."""
    if kind == "sqlite":
        databases = SQLiteDatabases(settings.work_dir)
    else:
        databases = PostgresDatabases(settings.postgres_url)
    redis = EmbeddedRedis().start()
    try:
        url = databases.create("recurring")
        migrate(url, redis.url)
        command = [sys.executable, "-m", "bench.recurring", str(settings.scale)]
        done = subprocess.run(
            command, cwd=ROOT, env=worker_env(redis.url, url), capture_output=True, text=True
        )
        if done.returncode:
            raise RuntimeError(f"python -m bench.recurring failed:\n{done.stderr[-2000:]}")
        return json.loads(done.stdout.splitlines()[-1])
    finally:
        redis.stop()
        databases.drop_all()


def main() -> None:
    """In the child process: write the blog, then measure each job on it."""
    from blog import create_app
    from workers import maintenance

    size = Size().scaled(float(sys.argv[1]))
    app = create_app(migrations=False)
    with app.app_context():
        from bench import large_blog

        began = time.monotonic()
        large_blog.write(size)
        settle()
        figures = {"size": vars(size), "seed_seconds": time.monotonic() - began}
        for name in ("requeue_stranded_work", "refresh_stats"):
            job = getattr(maintenance, name)
            figures[name] = measure_job(job, lambda: large_blog.a_minute_of_signups(size))
    print(json.dumps(figures))


def settle() -> None:
    """Bring the database to a steady state after the bulk load: the counts of what it wrote
    added up (what a minute of ``refresh_stats`` does for a minute of writes) and, on
    PostgreSQL, what autovacuum does to a table soon after it grew: statistics for the planner,
    and the visibility map that lets a query read an index alone."""
    from blog.extensions import db
    from workers.maintenance import add_up_count_changes

    add_up_count_changes()
    db.session.commit()
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("VACUUM ANALYZE")


def measure_job(job, a_minute_passes) -> dict:
    """The job's first run, then ``RUNS`` timed runs and one counted, each after a minute of
    signups (``a_minute_passes``, not timed)."""
    from blog.queues import redis_connection

    began = time.monotonic()
    result = job()
    first = time.monotonic() - began
    if job.__name__ == "requeue_stranded_work" and any(result.values()):
        raise RuntimeError(f"the large blog should have nothing stranded, but: {result}")
    times = []
    for _ in range(RUNS):
        a_minute_passes()
        began = time.monotonic()
        job()
        times.append(time.monotonic() - began)
    a_minute_passes()
    connection = redis_connection()
    connection.config_resetstat()
    with counting_round_trips() as trips:
        job()
    commands = sum(
        stats["calls"]
        for name, stats in connection.info("commandstats").items()
        if name not in ("cmdstat_config", "cmdstat_info")
    )
    return {
        "first_seconds": first,
        "seconds": statistics.median(times),
        "round_trips": trips.count,
        "commands": commands,
    }


if __name__ == "__main__":
    main()
