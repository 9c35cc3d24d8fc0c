"""The worker dyno's main process: ``python -m workers``, the Procfile's ``worker`` line.

It builds the Flask app once, then forks the processes that run jobs, which share the app's
memory with it:

- ``WORKER_MODE=threads`` (the default): ``WORKER_PROCESSES`` processes, each running
  ``WORKER_CONCURRENCY / WORKER_PROCESSES`` jobs at a time in threads (``workers.process``);
- ``WORKER_MODE=fork``: ``WORKER_CONCURRENCY`` RQ forking workers, a new work-horse per job.

and, in its own single thread, the work that must go on whatever the jobs do:

- it moves scheduled jobs and retries to their queues when due (``workers.scheduler``);
- every heartbeat, and at once when one of its processes dies, it recovers the jobs of dead
  workers, its own or another dyno's (``workers.recovery``);
- it replaces a process that exits: at once after a memory recycle, after a growing pause
  after a crash (so a job that crashes its process cannot spin the dyno), and never when a
  process fails on the configuration: then everything stops, with the error on one line.

SIGTSTP quiets every process (no more jobs; the running ones finish), a fresh one included,
before a deploy's SIGTERM; the admin page quiets one process, through Redis, and its
replacement if it is replaced. SIGTERM (or Ctrl+C) stops the processes, which finish or requeue
their jobs, then this one.
A process still running ``WORKER_SHUTDOWN_GRACE + STOP_PATIENCE + 1`` seconds after the stop
(a work-horse or a thread that would not stop) is killed, with its work-horse, and from then
on nothing waits on Redis: its jobs are left to the next recovery sweep (any dyno's, or this
one's next boot). So the dyno is gone before a platform's SIGKILL, 30 s after its SIGTERM.
``--burst`` runs until the queues (and the due scheduled jobs) are empty: for tests and scripts.
"""

import argparse
import contextlib
import gc
import logging
import os
import signal
import socket
import sys
import time
from typing import NamedTuple

from redis.exceptions import RedisError
from rq.exceptions import StopRequested
from rq.worker import Worker

from blog import tracing
from blog.config import (
    EXIT_CONFIG_ERROR,
    ConfigError,
    check_or_exit,
    read_settings,
    worker_settings,
)
from blog.queue_admin import QUIET_KEY
from blog.queues import QUEUE_NAMES, Queue
from workers import process_app
from workers.process import (
    EXIT_RECYCLE,
    HANDLED_SIGNALS,
    STOP_PATIENCE,
    ProcessSettings,
    WorkerProcess,
    stop_when_orphaned,
)
from workers.recovery import Recovery
from workers.scheduler import Scheduler
from workers.worker import ForkWorker, new_boot_token, process_prefix

log = logging.getLogger("workers.supervisor")

TICK = 0.1
MAX_RESTART_PAUSE = 30
# A process that ran this long before crashing resets the pause before restarts.
STEADY_SECONDS = 60
# Seconds past the stop's grace and patience before a process that is still there is killed.
KILL_MARGIN = 1


class Supervisor:
    def __init__(self, app, burst: bool = False, queues=QUEUE_NAMES):
        self.app = app
        self.config = app.config
        self.burst = burst
        # The queues this dyno's jobs come from, in the order they are served. Scheduling and
        # recovery look after all of them, whatever a dyno serves.
        self.queues = list(queues)
        self.connection = app.extensions["redis"]
        self.hostname = socket.gethostname()
        self.mode = self.config["WORKER_MODE"]
        heartbeat = self.config["WORKER_HEARTBEAT"]
        self.heartbeat = heartbeat
        self.scheduler = Scheduler(
            self.connection,
            QUEUE_NAMES,
            name=f"{self.hostname}.{os.getpid()}",
            lock_seconds=max(2, round(2 * heartbeat)),
        )
        self.recovery = Recovery(self.connection, QUEUE_NAMES)
        self.children: dict[int, Child] = {}
        self.crashes = 0
        self.restarts: list[tuple[float, int]] = []  # (when, slot)
        self.stopping = False
        self.stopped_at: float | None = None
        self.killed: set[int] = set()
        self.quiet = False
        # The slots whose process was quieted from the admin page: its replacement (after a
        # crash or a memory recycle) starts quiet too.
        self.quiet_slots: set[int] = set()
        self.exit_code = 0

    @property
    def slots(self) -> int:
        if self.mode == "fork":
            return self.config["WORKER_CONCURRENCY"]
        return min(self.config["WORKER_PROCESSES"], self.config["WORKER_CONCURRENCY"])

    def threads(self, slot: int) -> int:
        """The jobs process ``slot`` runs at once: the concurrency, spread over the slots."""
        per_slot, extra = divmod(self.config["WORKER_CONCURRENCY"], self.slots)
        return per_slot + (1 if slot < extra else 0)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTSTP, self._quiet)
        self._wait_for_redis()
        log.info(
            "worker: %s jobs at a time, %s, on %s",
            self.config["WORKER_CONCURRENCY"],
            f"{self.slots} forking workers"
            if self.mode == "fork"
            else f"threads in {self.slots} process{'es' if self.slots > 1 else ''}",
            ", ".join(self.queues),
        )
        # What every process needs is in memory now: keep the garbage collector away from it,
        # so that the forks share these pages instead of each copying them.
        gc.collect()
        gc.freeze()
        if self.burst:
            return self._run_burst()
        for slot in range(self.slots):
            self._spawn(slot)
        next_sweep = 0.0
        while self.children or not self.stopping:
            self._reap()
            self._restart_due()
            self._kill_overdue()
            pause = TICK
            if not self.out_of_time:  # past it, nothing more that waits on Redis
                if time.monotonic() >= next_sweep:
                    self._safely(self.recovery.sweep)
                    next_sweep = time.monotonic() + self.heartbeat
                if not self.stopping or self.children:
                    pause = self._safely(self.scheduler.tick) or TICK
            time.sleep(pause)
        if not self.out_of_time:
            self._safely(self.scheduler.release)
        return self.exit_code

    def _run_burst(self) -> int:
        """Run processes until a round finds nothing to do."""
        while not self.stopping:
            self.scheduler.tick()
            queues = [Queue(name, connection=self.connection) for name in self.queues]
            if not any(queue.count for queue in queues):
                break
            self._spawn(0)
            while self.children:
                self._reap()
                time.sleep(TICK)
        self.scheduler.release()
        return self.exit_code

    def _spawn(self, slot: int) -> None:
        """Fork a worker process. The signals it handles stay blocked in it until it has its
        own handlers: one sent before would run this process's handler there, and be lost."""
        boot = new_boot_token()
        signal.pthread_sigmask(signal.SIG_BLOCK, HANDLED_SIGNALS)
        try:
            quiet = slot in self.quiet_slots
            self.quiet_slots.discard(slot)
            supervisor = os.getpid()
            pid = os.fork()
            if pid == 0:
                stop_when_orphaned(supervisor)
                prefix = process_prefix(self.hostname, os.getpid(), boot)
                os._exit(self._child(slot, prefix, quiet))
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
        self.children[pid] = Child(slot, time.monotonic(), process_prefix(self.hostname, pid, boot))
        if self.quiet:
            os.kill(pid, signal.SIGTSTP)

    def _child(self, slot: int, prefix: str, quiet: bool = False) -> int:
        """The body of a forked process; its exit code. A ``quiet`` one takes no jobs."""
        code = 1
        try:
            if self.mode == "fork":
                code = self._fork_worker(prefix, quiet)
            else:
                settings = ProcessSettings(
                    threads=self.threads(slot),
                    heartbeat=self.heartbeat,
                    shutdown_grace=self.config["WORKER_SHUTDOWN_GRACE"],
                    memory_limit_mb=self.config["WORKER_MEMORY_LIMIT"],
                )
                process = WorkerProcess(self.connection, self.queues, settings, prefix)
                if quiet:
                    process.quiet()
                code = process.run(burst=self.burst)
        except ConfigError as error:
            print(f"worker: {error}", file=sys.stderr, flush=True)
            code = EXIT_CONFIG_ERROR
        except BaseException:
            log.exception("worker process %s failed", os.getpid())
        finally:
            tracing.flush()  # os._exit follows: no atexit handler runs
            logging.shutdown()
        return code

    def _fork_worker(self, prefix: str, quiet: bool) -> int:
        worker = ForkWorker(
            self.queues,
            name=f"{prefix}1",
            connection=self.connection,
            heartbeat=self.heartbeat,
            shutdown_grace=round(self.config["WORKER_SHUTDOWN_GRACE"]),
        )
        worker.quiet = quiet
        # RQ's own handlers, in place before the signals are let in (work() installs them
        # again); a stop before the work loop runs ends it at once.
        signal.signal(signal.SIGTERM, worker.request_stop)
        signal.signal(signal.SIGINT, worker.request_stop)
        signal.signal(signal.SIGTSTP, lambda signum, frame: setattr(worker, "quiet", True))
        try:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
            worker.work(burst=self.burst, logging_level="WARNING")
        except StopRequested:
            if worker.birth_date is not None:
                worker.register_death()
        return 0

    def _reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            child = self.children.pop(pid)
            self._after_exit(pid, child, os.waitstatus_to_exitcode(status))

    def _after_exit(self, pid: int, child: "Child", code: int) -> None:
        if not self.out_of_time and self._bury(child.prefix):
            self.quiet_slots.add(child.slot)
        slot, started = child.slot, child.started
        if code == EXIT_CONFIG_ERROR:
            log.error("worker process %s failed on the configuration: stopping", pid)
            self.exit_code = EXIT_CONFIG_ERROR
            self._request_stop()
            return
        if self.stopping or self.burst:
            return
        if code == EXIT_RECYCLE:
            log.info("worker process %s recycled; starting a fresh one", pid)
            self._spawn(slot)
            return
        self.crashes = 0 if time.monotonic() - started > STEADY_SECONDS else self.crashes + 1
        pause = min(MAX_RESTART_PAUSE, 2 ** (self.crashes - 1)) if self.crashes else 0
        how = f"signal {-code}" if code < 0 else f"exit code {code}"
        log.error("worker process %s ended (%s); restarting it in %ss", pid, how, pause)
        self.restarts.append((time.monotonic() + pause, slot))

    def _restart_due(self) -> None:
        now = time.monotonic()
        for when, slot in [r for r in self.restarts if r[0] <= now]:
            self.restarts.remove((when, slot))
            if not self.stopping:
                self._spawn(slot)

    def _bury(self, prefix: str) -> bool:
        """Recover the jobs of a process that is gone, and stop listing its workers; and
        forget that it was quieted from the admin page, saying whether it was."""

        def bury() -> bool:
            dead = [w for w in Worker.all(connection=self.connection) if w.name.startswith(prefix)]
            self.recovery.sweep(dead_workers={w.name for w in dead})
            for worker in dead:
                worker.register_death()
            return bool(self.connection.srem(QUIET_KEY, prefix))

        return bool(self._safely(bury))

    def _request_stop(self, signum=None, frame=None) -> None:
        if not self.stopping:
            log.info("worker: stopping")
            self.stopped_at = time.monotonic()
        self.stopping = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    @property
    def out_of_time(self) -> bool:
        """Whether the stop has run past its budget: kill what is left, wait for nothing."""
        budget = self.config["WORKER_SHUTDOWN_GRACE"] + STOP_PATIENCE + KILL_MARGIN
        return self.stopped_at is not None and time.monotonic() >= self.stopped_at + budget

    def _quiet(self, signum=None, frame=None) -> None:
        """SIGTSTP: quiet every process (no more jobs; the running ones finish)."""
        log.info("worker: quiet; SIGTERM to stop")
        self.quiet = True
        for pid in self.children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTSTP)

    def _kill_overdue(self) -> None:
        """Kill the processes (and their work-horses) still there long after the stop."""
        if not self.out_of_time:
            return
        for pid in set(self.children) - self.killed:
            log.error("worker process %s did not stop in time: killing it", pid)
            kill_tree(pid)
            self.killed.add(pid)

    def _wait_for_redis(self) -> None:
        while not self.stopping:
            try:
                self.connection.ping()
                return
            except RedisError as error:
                log.error("worker: cannot reach Redis (%s); trying again in 2 s", error)
                time.sleep(2)

    def _safely(self, action, *args, **kwargs):
        """Run ``action``; a Redis outage is logged and waited out, not a crash."""
        try:
            return action(*args, **kwargs)
        except RedisError as error:
            log.warning("worker: Redis: %s", error)
            time.sleep(1)
            return None


class Child(NamedTuple):
    slot: int
    started: float
    prefix: str  # what its workers' names start with


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its descendants: a forking worker's work-horse runs in a
    process group of its own, which a signal to the worker does not reach."""
    for child in descendants(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as children:
            pids = [int(child) for child in children.read().split()]
    except OSError:
        return []
    return [grandchild for child in pids for grandchild in (child, *descendants(child))]


def queue_list(value: str) -> list[str]:
    """``--queues urgent,mailers``: names of the app's queues, in the order to serve them."""
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in QUEUE_NAMES]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"the queues are {', '.join(QUEUE_NAMES)}, not {value!r}")
    return names


def size_the_database_pool(environ) -> None:
    """Give each process a database connection per thread: a job that waited for another's
    connection would hold its thread idle. (``docs/deploy.md`` counts them against a plan's
    limit.)"""
    settings = worker_settings(environ)
    if settings["WORKER_MODE"] == "threads":
        processes = min(settings["WORKER_PROCESSES"], settings["WORKER_CONCURRENCY"])
        threads = -(-settings["WORKER_CONCURRENCY"] // processes)
        pool = read_settings(environ).DATABASE_POOL_SIZE
        environ["DATABASE_POOL_SIZE"] = str(max(pool, threads))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workers", description=__doc__.split("\n")[0])
    parser.add_argument("--burst", action="store_true", help="stop when the queues are empty")
    parser.add_argument(
        "--queues",
        type=queue_list,
        default=QUEUE_NAMES,
        help=f"serve only these, in this order (default: {','.join(QUEUE_NAMES)})",
    )
    args = parser.parse_args(argv)
    check_or_exit("worker")  # a bad setting: one line naming it, and status 78
    size_the_database_pool(os.environ)
    return Supervisor(process_app(), burst=args.burst, queues=args.queues).run()
