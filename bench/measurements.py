"""What each row of the table measures, for one worker column at a time.

Every measurement gets a ``Cell``: a Redis server of its own (so that no worker, lock or
registry left by another column can interfere), a log file for the worker's output, and the
run's settings. It returns the values of its lines of the table, by line name.
"""

import json
import os
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from redis import Redis
from rq import Queue, Retry, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from bench import jobs
from bench.databases import PostgresDatabases, SQLiteDatabases
from bench.processes import Column, MemorySampler, WorkerProcess, worker_env
from devtools.embedded_redis import EmbeddedRedis
from workers.demo import demo

MB = 1024 * 1024
QUEUE = "default"
# The readiness probe goes to another queue, so that it never counts in QUEUE's registries.
PROBE_QUEUE = "urgent"


@dataclass
class Settings:
    """The run's parameters (see ``python -m bench --help``)."""

    log_dir: Path
    work_dir: Path
    scale: float = 1.0
    concurrency: int | None = None  # None: the app's own default; the pool gets one per core
    lesson_concurrency: int = 25
    lesson_delay: float = 5.0
    drain_seconds: float = 10.0
    cap: float = 120.0
    postgres_url: str = "postgresql://postgres@127.0.0.1:5432/postgres"
    # State of the run: the auto-tag rows' template databases, made on first use; and a flag
    # that tells cells running in threads to give up (Ctrl+C).
    databases: dict = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    def count(self, full: int, least: int = 1) -> int:
        return max(least, round(full * self.scale))


class Capped:
    """A wait that reached the run's cap without seeing what it waited for."""

    def __init__(self, cap: float):
        self.cap = cap

    def to_json(self) -> dict:
        return {"over": self.cap}


class NotApplicable:
    def __init__(self, why: str):
        self.why = why

    def to_json(self) -> dict:
        return {"n/a": self.why}


class Cell:
    """One row measured on one column."""

    def __init__(self, settings: Settings, row: str, column: Column):
        self.settings = settings
        self.row = row
        self.column = column
        self.notes: list[str] = []
        self.workers: list[WorkerProcess] = []
        self.log_path = settings.log_dir / f"{row}-{column.name}.log"

    def __enter__(self) -> "Cell":
        self.log_path.write_text("")
        self.redis_server = EmbeddedRedis().start()
        self.redis: Redis = self.redis_server.client()
        self.queue = Queue(QUEUE, connection=self.redis)
        return self

    def __exit__(self, *exc) -> None:
        for worker in self.workers:
            worker.kill()
        self.redis.close()
        self.redis_server.stop()

    def note(self, text: str) -> None:
        self.notes.append(f"{self.column.name}, {self.row}: {text}")

    def start_worker(self, database_url: str | None = None, concurrency: int | None = None):
        """Start the column's command; ``concurrency`` (else the run's) sets
        ``WORKER_CONCURRENCY`` and the pool's size."""
        concurrency = concurrency or self.settings.concurrency
        config = {"WORKER_CONCURRENCY": concurrency} if concurrency else {}
        database_url = database_url or f"sqlite:///{self.settings.work_dir / 'unused.sqlite3'}"
        env = worker_env(self.redis_server.url, database_url, **config)
        command = self.column.command(concurrency or default_pool_size())
        worker = WorkerProcess(command, env, self.log_path).start()
        self.workers.append(worker)
        return worker

    def wait_ready(self, worker: WorkerProcess, timeout: float = 120) -> None:
        """Wait until the worker has run a first job: it is up, and has imported what it needs."""
        key = self.key("ready")
        Queue(PROBE_QUEUE, connection=self.redis).enqueue(jobs.stamp, key)
        if not self.records(key, 1, timeout, worker):
            raise TimeoutError(f"the worker ran no job within {timeout:.0f} s")
        worker.tree()  # remember its processes, to find them even if their parent dies

    def check_stopping(self) -> None:
        if self.settings.stopping.is_set():
            raise KeyboardInterrupt

    def key(self, name: str) -> str:
        return f"bench:{name}:{uuid.uuid4().hex[:8]}"

    def records(self, key: str, count: int, timeout: float, worker: WorkerProcess) -> list[dict]:
        """Wait for ``count`` records that ``bench.jobs`` pushed onto ``key``; fewer at the
        deadline."""
        found = []
        deadline = time.monotonic() + timeout
        while len(found) < count:
            self.check_stopping()
            left = deadline - time.monotonic()
            if left <= 0:
                break
            item = self.redis.blpop([key], timeout=min(1.0, left))
            if item is None:
                worker.check_alive()
            else:
                found.append(json.loads(item[1]))
        return found

    def drain(self, worker: WorkerProcess, prepared: list) -> float:
        """Enqueue the jobs at once, on a running worker; jobs/s until all finished (or the
        time limit)."""
        finished = self.queue.finished_job_registry
        failed = self.queue.failed_job_registry
        limit = self.settings.drain_seconds
        started = time.monotonic()
        self.queue.enqueue_many(prepared)
        while True:
            done = finished.count
            elapsed = time.monotonic() - started
            if done + failed.count >= len(prepared) or elapsed >= limit:
                break
            worker.check_alive()
            time.sleep(0.02)
        if failed.count:
            raise RuntimeError(f"{failed.count} jobs failed; see {self.log_path}")
        if done < len(prepared):
            self.note(f"stopped at the {limit:g} s limit, after {done} of {len(prepared)} jobs")
        return done / elapsed


def default_pool_size() -> int:
    return os.cpu_count() or 1


def measure_noop(cell: Cell) -> dict:
    worker = cell.start_worker()
    cell.wait_ready(worker)
    prepared = [Queue.prepare_data(jobs.noop) for _ in range(cell.settings.count(3000, 10))]
    return {"noop": cell.drain(worker, prepared)}


def auto_tag(kind: str):
    def measure(cell: Cell) -> dict:
        databases, post_ids = prepared_databases(cell.settings, kind)
        worker = cell.start_worker(databases.copy(cell.column.name))
        cell.wait_ready(worker)
        prepared = [Queue.prepare_data(jobs.auto_tag_post, (post_id,)) for post_id in post_ids]
        return {f"tag_{kind}": cell.drain(worker, prepared)}

    return measure


def prepared_databases(settings: Settings, kind: str):
    """The template database of ``kind`` with its posts, made on first use."""
    if kind not in settings.databases:
        if kind == "sqlite":
            databases = SQLiteDatabases(settings.work_dir)
        else:
            databases = PostgresDatabases(settings.postgres_url)
        posts = settings.count(1500, 10)
        # The seed builds the app, which wants a Redis URL. Nothing listens there: the one
        # use, the page cache's version after the commit, fails with a warning (harmless).
        settings.databases[kind] = (databases, databases.prepare(posts, "redis://127.0.0.1:1/0"))
    return settings.databases[kind]


def measure_latency(cell: Cell) -> dict:
    """One job at a time on an idle worker: from just before the enqueue to the job's first
    line."""
    worker = cell.start_worker()
    cell.wait_ready(worker)
    key = cell.key("latency")
    latencies = []
    for _ in range(cell.settings.count(100, 5)):
        enqueued = time.time()
        job = cell.queue.enqueue(jobs.stamp, key)
        started = cell.records(key, 1, 30, worker)
        if not started:
            raise TimeoutError("a job did not start within 30 s")
        latencies.append(started[0]["at"] - enqueued)
        wait_finished(job, worker)
        time.sleep(0.05)  # idle again: the worker is back to waiting for a job
    p50 = statistics.median(latencies)
    p99 = statistics.quantiles(latencies, n=100, method="inclusive")[98]
    return {"latency_p50": p50 * 1000, "latency_p99": p99 * 1000}


def wait_finished(job: Job, worker: WorkerProcess, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if job.get_status(refresh=True) in (JobStatus.FINISHED, JobStatus.FAILED):
                return
        except NoSuchJobError:  # finished, and its result kept for no time
            return
        worker.check_alive()
        time.sleep(0.01)
    raise TimeoutError(f"job {job.id} did not finish within {timeout:.0f} s")


def measure_lesson(cell: Cell) -> dict:
    """Chapter 000's lesson: a backlog of demo jobs that sleep, drained 25 at a time."""
    lines = ("lesson_time", "lesson_pss_peak", "lesson_pss_idle")
    if cell.column.single:
        return dict.fromkeys(lines, NotApplicable("runs one job at a time"))
    settings = cell.settings
    concurrency = settings.lesson_concurrency
    count = settings.count(500, concurrency)
    worker = cell.start_worker(concurrency=concurrency)
    with MemorySampler(worker) as memory:
        cell.wait_ready(worker, timeout=300)
        idle = settled_pss(worker)
        prepared = [
            Queue.prepare_data(demo, (settings.lesson_delay, "bench")) for _ in range(count)
        ]
        started = time.monotonic()
        cell.queue.enqueue_many(prepared)
        finished = cell.queue.finished_job_registry
        ideal = count * settings.lesson_delay / concurrency
        deadline = started + 3 * ideal + 120
        while finished.count < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {finished.count} of {count} jobs finished")
            worker.check_alive()
            time.sleep(0.05)
        wall = time.monotonic() - started
    if cell.queue.failed_job_registry.count:
        raise RuntimeError(f"{cell.queue.failed_job_registry.count} demo jobs failed")
    cell.note(
        f"ideal {ideal:.0f} s; peak over {memory.peak_processes} processes, "
        f"{memory.samples} samples"
    )
    return {
        "lesson_time": wall,
        "lesson_pss_peak": memory.peak / MB,
        "lesson_pss_idle": idle / MB,
    }


def settled_pss(worker: WorkerProcess, quiet: float = 3, timeout: float = 60) -> int:
    """The worker's PSS once its number of processes has not changed for ``quiet`` seconds
    (a pool starts its members one by one)."""
    deadline = time.monotonic() + timeout
    last, since = None, time.monotonic()
    while time.monotonic() < deadline:
        _, count = worker.pss()
        if count != last:
            last, since = count, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
        time.sleep(0.25)
    return worker.pss()[0]


def measure_scheduled(cell: Cell) -> dict:
    """Jobs given a time (``enqueue_at``) or a delay (``enqueue_in``), and retries after a
    failure: when each started, against when it was due. Negative means early."""
    worker = cell.start_worker()
    cell.wait_ready(worker)
    key = cell.key("scheduled")
    due: dict[str, float] = {}
    count = cell.settings.count(20, 4)
    for n in range(count):
        offset = 2.0 + n * 0.317  # spread over 6 s, with every fraction of a second
        if n % 2:
            due_at = time.time() + offset  # enqueue_in adds the delay to a later "now"
            job = cell.queue.enqueue_in(timedelta(seconds=offset), jobs.stamp, key)
        else:
            due_at = time.time() + offset
            when = datetime.fromtimestamp(due_at, UTC)
            job = cell.queue.enqueue_at(when, jobs.stamp, key)
        due[job.id] = due_at
    intervals: dict[str, int] = {}
    for n in range(cell.settings.count(6, 2)):
        interval = 1 + n % 3
        retry = Retry(max=1, interval=interval)
        job = cell.queue.enqueue(jobs.fail_first_run, key, retry=retry)
        intervals[job.id] = interval
    expected = count + 2 * len(intervals)
    timeout = max(due.values()) - time.time() + cell.settings.cap
    records = cell.records(key, expected, timeout, worker)
    late, retry_late, failed_at = [], [], {}
    for record in records:
        if record["job"] in due:
            late.append(record["at"] - due[record["job"]])
        elif record["event"] == "fail":
            failed_at[record["job"]] = record["at"]
        else:
            retry_due = failed_at[record["job"]] + intervals[record["job"]]
            retry_late.append(record["at"] - retry_due)
    if len(records) < expected:
        cell.note(f"{expected - len(records)} of {expected} starts missing after the cap")
    return {
        "scheduled_lateness": spread(late, count, cell.settings.cap),
        "retry_lateness": spread(retry_late, len(intervals), cell.settings.cap),
    }


def spread(values: list[float], expected: int, cap: float):
    if len(values) < expected:
        return Capped(cap)
    return (min(values), max(values))


def crash(survivor: bool):
    """SIGKILL every process of a worker while it runs a job, as a platform does when a dyno
    crashes or runs out of memory; then start the same command again at once (as the platform
    restarts the dyno) or, with ``survivor``, leave the work to a second worker that was
    running all along."""
    prefix = "survivor" if survivor else "crash"
    lines = (f"{prefix}_rerun", f"{prefix}_due", f"{prefix}_busy")

    def measure(cell: Cell) -> dict:
        cap = cell.settings.cap
        worker = cell.start_worker()
        cell.wait_ready(worker)
        workers = [worker]
        if survivor:
            workers.append(start_second_worker(cell))
        key = cell.key(prefix)
        long_job = cell.queue.enqueue(
            jobs.sleep_on_first_run, key, cap + 60, retry=Retry(max=3), job_timeout=int(3 * cap)
        )
        started = cell.records(key, 1, 60, worker)
        if not started:
            raise TimeoutError("the long job did not start within 60 s")
        victim, dead = running(cell, started[0]["pid"], workers)
        due_at = time.time() + 5
        due_job = cell.queue.enqueue_at(datetime.fromtimestamp(due_at, UTC), jobs.stamp, key)
        victim.kill()
        killed = time.time()
        alive = next(w for w in workers if w is not victim) if survivor else cell.start_worker()

        found: dict = {}
        if not dead:
            found[lines[2]] = NotApplicable("RQ listed no worker with a pid of the dead one")
        starts: dict[str, list[float]] = {}
        while len(found) < 3 and time.time() - killed < cap:
            cell.check_stopping()
            for raw in cell.redis.lpop(key, 100) or []:
                record = json.loads(raw)
                starts.setdefault(record["job"], []).append(record["at"])
            if long_job.id in starts:
                found.setdefault(lines[0], starts[long_job.id][0] - killed)
            if due_job.id in starts:
                found.setdefault(lines[1], starts[due_job.id][0] - due_at)
            if lines[2] not in found and not dead & {w.name for w in Worker.all(cell.redis)}:
                found.setdefault(lines[2], time.time() - killed)
            alive.check_alive()
            time.sleep(0.2)
        if len(starts.get(due_job.id, [])) > 1:
            cell.note(f"the job due after the crash ran {len(starts[due_job.id])} times")
        return {line: found.get(line, Capped(cap)) for line in lines}

    return measure


def start_second_worker(cell: Cell) -> WorkerProcess:
    """Start the column's command a second time, and wait until RQ lists its workers too."""
    listed = len(Worker.all(connection=cell.redis))
    second = cell.start_worker()
    deadline = time.monotonic() + 120
    while len(Worker.all(connection=cell.redis)) < 2 * listed:
        if time.monotonic() > deadline:
            raise TimeoutError("the second worker did not show up in RQ's list of workers")
        second.check_alive()
        time.sleep(0.1)
    return second


def running(cell: Cell, pid: int, workers: list[WorkerProcess]):
    """The worker whose processes include ``pid``, and the names RQ lists its workers by."""
    victim = next((w for w in workers if pid in {p.pid for p in w.tree()}), None)
    if victim is None:
        raise RuntimeError(f"the job ran in process {pid}, which is no worker's")
    listed = Worker.all(connection=cell.redis)
    if len(workers) == 1:
        return victim, {w.name for w in listed}
    pids = {process.pid for process in victim.tree()}
    return victim, {w.name for w in listed if w.pid in pids}


ROWS = {
    "noop": measure_noop,
    "tag-sqlite": auto_tag("sqlite"),
    "tag-postgres": auto_tag("postgres"),
    "latency": measure_latency,
    "lesson": measure_lesson,
    "scheduled": measure_scheduled,
    "crash": crash(survivor=False),
    "crash-survivor": crash(survivor=True),
}
# Rows whose cells (every column of each) run at the same time: they mostly wait, up to the
# cap, for timers in the workers; one after the other they would take the cap eight times.
PARALLEL_ROWS = {"crash", "crash-survivor"}
