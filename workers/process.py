"""A worker process: ``threads`` RQ workers, one per thread, and a monitor that keeps them honest.

Jobs that wait (on an API, SMTP, the database, a sleep) run side by side in threads of one
process, and 25 of them cost about what one costs: one Flask app, one set of imports. The
monitor thread, every tenth of a second:

- stops the jobs past their ``job_timeout`` (``workers.interrupts``);
- renews, every heartbeat, each thread's worker key and running job in Redis, so that when this
  process dies its jobs are recovered within a few heartbeats (``workers.recovery``);
- recycles the process when its memory passes ``WORKER_MEMORY_LIMIT``: it stops taking jobs,
  interrupts the running ones (each goes back to the front of its queue) and exits, and the
  supervisor starts a fresh one. A leak or a runaway job costs a restart, not the dyno;
- gives up on a job that an interruption could not stop (stuck in a C call) and recycles too.

The process's main thread handles the signals: SIGTERM (or SIGINT) stops taking jobs, lets the
running ones finish for ``WORKER_SHUTDOWN_GRACE`` seconds, then interrupts them, and they go
back to the front of their queues.
"""

import logging
import os
import signal
import socket
import threading
import time
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from workers import interrupts
from workers.worker import ThreadWorker, worker_name

log = logging.getLogger("workers.process")

MONITOR_TICK = 0.1
# Seconds a job gets to stop after an interruption before the process gives up on it.
STOP_PATIENCE = 5

EXIT_RECYCLE = 3  # asks the supervisor for a fresh process at once


@dataclass(frozen=True)
class ProcessSettings:
    threads: int
    heartbeat: float
    shutdown_grace: float
    memory_limit_mb: int  # 0: no limit


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class WorkerProcess:
    def __init__(self, connection: Redis, queue_names, settings: ProcessSettings):
        self.connection = connection
        self.settings = settings
        hostname, pid = socket.gethostname(), os.getpid()
        self.workers = [
            ThreadWorker(
                list(queue_names),
                name=worker_name(hostname, pid, number),
                connection=connection,
                heartbeat=settings.heartbeat,
            )
            for number in range(1, settings.threads + 1)
        ]
        self.stopping = threading.Event()
        self.exit_code = 0
        self._stop_deadline: float | None = None

    def run(self, burst: bool = False) -> int:
        """Work until stopped (or, with ``burst``, until the queues are empty); the exit code."""
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        pubsub = self._subscribe()
        threads = [
            threading.Thread(
                target=worker.work,
                kwargs={"burst": burst, "logging_level": "WARNING"},
                name=worker.name,
                daemon=True,
            )
            for worker in self.workers
        ]
        for thread in threads:
            thread.start()
        monitor = threading.Thread(target=self._monitor, name="monitor", daemon=True)
        monitor.start()
        try:
            while any(thread.is_alive() for thread in threads):
                if self._stop_deadline and time.monotonic() > self._stop_deadline + STOP_PATIENCE:
                    log.error("jobs did not stop in time; leaving them to the recovery sweep")
                    break
                time.sleep(MONITOR_TICK)
        finally:
            self.stopping.set()
            monitor.join(timeout=1)
            pubsub.close()
        return self.exit_code

    def stop(self, reason: str, exit_code: int = 0, grace: float | None = None) -> None:
        """Take no more jobs; interrupt the running ones after ``grace`` seconds."""
        if self._stop_deadline is not None:
            return
        log.info("worker process %s stopping: %s", os.getpid(), reason)
        self.exit_code = exit_code
        grace = self.settings.shutdown_grace if grace is None else grace
        self._stop_deadline = time.monotonic() + grace
        for worker in self.workers:
            worker._stop_requested = True

    def _request_stop(self, signum, frame) -> None:
        self.stop(f"got {signal.Signals(signum).name}")

    def _subscribe(self):
        """One subscription for the commands sent to any of the threads (stop-job, ...)."""
        pubsub = self.connection.pubsub()
        pubsub.subscribe(**{w.pubsub_channel_name: w.handle_payload for w in self.workers})
        pubsub.run_in_thread(sleep_time=1, daemon=True, exception_handler=_log_pubsub_error)
        return pubsub

    def _monitor(self) -> None:
        next_heartbeat = 0.0
        while not self.stopping.is_set():
            now = time.monotonic()
            try:
                if now >= next_heartbeat:
                    self._heartbeat()
                    next_heartbeat = now + self.settings.heartbeat
                self._enforce_limits(now)
            except RedisError as error:
                log.warning("monitor: %s", error)
            self.stopping.wait(MONITOR_TICK)

    def _enforce_limits(self, now: float) -> None:
        for deadline in interrupts.overdue(now):
            if interrupts.interrupt(deadline.thread_id, deadline.timed_out):
                log.warning(
                    "%s: %s", threading_name(deadline.thread_id), deadline.timed_out.message
                )
        if self._stop_deadline and now > self._stop_deadline:
            for worker in self.workers:
                if worker.running and worker.interrupt(interrupts.WorkerStopping):
                    log.warning("%s: interrupted by the stop", worker.name)
        limit = self.settings.memory_limit_mb
        if limit and self._stop_deadline is None and (used := rss_mb()) > limit:
            self.stop(
                f"its memory ({used:.0f} MB) passed WORKER_MEMORY_LIMIT ({limit} MB)",
                exit_code=EXIT_RECYCLE,
                grace=0,
            )
        if interrupts.stuck(STOP_PATIENCE, now) and self._stop_deadline is None:
            self.stop("a job did not stop when interrupted", exit_code=EXIT_RECYCLE, grace=0)

    def _heartbeat(self) -> None:
        with self.connection.pipeline(transaction=False) as pipeline:
            for worker in self.workers:
                if worker.birth_date is None or worker.done:
                    continue  # not registered yet, or no more
                worker.heartbeat(pipeline=pipeline)
                running, execution = worker.running, worker.execution
                if running and execution:
                    job, queue = running
                    ttl = worker.get_heartbeat_ttl(job)
                    execution.heartbeat(queue.started_job_registry, ttl, pipeline=pipeline)
            pipeline.execute()


def threading_name(thread_id: int) -> str:
    for thread in threading.enumerate():
        if thread.ident == thread_id:
            return thread.name
    return f"thread {thread_id}"


def _log_pubsub_error(error, pubsub, thread) -> None:
    log.warning("commands subscription: %s; retrying", error)
    time.sleep(1)
