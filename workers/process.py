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
- fails a job that went on after it was interrupted for its timeout or a stop command
  (``except BaseException``, or stuck in a C call), saying so, and recycles the process; the
  other jobs get ``WORKER_SHUTDOWN_GRACE`` seconds to finish first, and a job interrupted
  then goes back to its queue with nothing counted against it;
- recycles the process, in the same way, when one of its threads dies (RQ's work loop quits
  on an error it does not expect, such as Redis timing out).

Every worker process, of either mode, also stops when its supervisor dies without it
(``stop_when_orphaned``).

The process's main thread handles the signals. SIGTSTP quiets it, as it does a Sidekiq
process before a deploy: its threads take no more jobs, the running ones finish, and it waits
for its SIGTERM. SIGTERM (or SIGINT) stops taking jobs, lets the
running ones finish for ``WORKER_SHUTDOWN_GRACE`` seconds, then interrupts them, and they go
back to the front of their queues. A job that does not stop even then is left to the
recovery sweep, and the process exits ``STOP_PATIENCE`` seconds later.
"""

import logging
import os
import signal
import threading
import time
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError

from blog.rq_internals import stop_taking_jobs
from workers import interrupts, recovery
from workers.worker import ThreadWorker

log = logging.getLogger("workers.process")

MONITOR_TICK = 0.1
# Seconds a job gets to stop after an interruption before the process gives up on it.
STOP_PATIENCE = 5

EXIT_RECYCLE = 3  # asks the supervisor for a fresh process at once
# What a worker process handles: SIGTERM and SIGINT stop it, SIGTSTP quiets it.
HANDLED_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGTSTP}


@dataclass(frozen=True)
class ProcessSettings:
    threads: int
    heartbeat: float
    shutdown_grace: float
    memory_limit_mb: int  # 0: no limit


def stop_when_orphaned(supervisor: int, every: float = 1.0) -> threading.Thread:
    """Send this process a SIGTERM once ``supervisor``, its parent, is gone.

    A supervisor killed on its own (the kernel's OOM killer, a stray ``kill -9``) would leave
    this process taking jobs with no one to stop, recycle or replace it, and the next
    supervisor would start more beside it. With the SIGTERM it stops as at a shutdown: its
    jobs finish or go back to their queues. Started while the process's signals are blocked,
    the signal waits until its handler is in place."""

    def watch() -> None:
        while os.getppid() == supervisor:
            time.sleep(every)
        log.error("worker process %s: its supervisor %s is gone; stopping", os.getpid(), supervisor)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=watch, name="orphan watch", daemon=True)
    thread.start()
    return thread


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


class WorkerProcess:
    def __init__(self, connection: Redis, queue_names, settings: ProcessSettings, prefix: str):
        """``prefix``: what its workers' names start with (``workers.worker.process_prefix``)."""
        self.connection = connection
        self.settings = settings
        self.workers = [
            ThreadWorker(
                list(queue_names),
                name=f"{prefix}{number}",
                connection=connection,
                heartbeat=settings.heartbeat,
            )
            for number in range(1, settings.threads + 1)
        ]
        self.threads: list[threading.Thread] = []
        self.stopping = threading.Event()
        self.exit_code = 0
        self._stop_deadline: float | None = None
        self._stop_reason: type[interrupts.WorkerStopping] = interrupts.WorkerStopping
        self._abandoned: set[int] = set()  # the threads of the jobs it gave up on

    def run(self, burst: bool = False) -> int:
        """Work until stopped (or, with ``burst``, until the queues are empty); the exit code.

        The supervisor forks this process with its signals blocked: one sent before the
        handlers below are in place waits for them, instead of being lost."""
        signal.signal(signal.SIGTERM, self._request_stop)
        signal.signal(signal.SIGINT, self._request_stop)
        signal.signal(signal.SIGTSTP, self._quiet)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, HANDLED_SIGNALS)
        pubsub = self._subscribe()
        self.threads = [
            threading.Thread(target=worker.run, args=(burst,), name=worker.name, daemon=True)
            for worker in self.workers
        ]
        for thread in self.threads:
            thread.start()
        monitor = threading.Thread(target=self._monitor, name="monitor", daemon=True)
        monitor.start()
        try:
            while any(t.is_alive() and t.ident not in self._abandoned for t in self.threads):
                if self._stop_deadline and time.monotonic() > self._stop_deadline + STOP_PATIENCE:
                    log.error("jobs did not stop in time; leaving them to the recovery sweep")
                    break
                if not burst and self._stop_deadline is None:
                    self._recycle_if_a_thread_died()
                time.sleep(MONITOR_TICK)
        finally:
            self.stopping.set()
            monitor.join(timeout=1)
            pubsub.close()
        return self.exit_code

    def stop(
        self,
        reason: str,
        exit_code: int = 0,
        grace: float | None = None,
        interruption: type[interrupts.WorkerStopping] = interrupts.WorkerStopping,
    ) -> None:
        """Take no more jobs; interrupt the running ones with ``interruption`` after ``grace``
        seconds."""
        if self._stop_deadline is not None:
            return
        log.info("worker process %s stopping: %s", os.getpid(), reason)
        self.exit_code = exit_code
        grace = self.settings.shutdown_grace if grace is None else grace
        self._stop_deadline = time.monotonic() + grace
        self._stop_reason = interruption
        for worker in self.workers:
            stop_taking_jobs(worker)

    def _recycle_if_a_thread_died(self) -> None:
        """A thread whose work loop ended outside a stop: recycle the process (the others
        finish their jobs first), as its slot would otherwise stay empty."""
        for thread in self.threads:
            if not thread.is_alive():
                log.error("worker thread %s died; recycling its process", thread.name)
                self.stop(f"its thread {thread.name} died", exit_code=EXIT_RECYCLE)
                return

    def _request_stop(self, signum, frame) -> None:
        self.stop(f"got {signal.Signals(signum).name}")

    def _quiet(self, signum=None, frame=None) -> None:
        log.info("worker process %s quiet: no more jobs; waiting for SIGTERM", os.getpid())
        self.quiet()

    def quiet(self) -> None:
        """Take no more jobs; the running ones finish."""
        for worker in self.workers:
            worker.quiet = True

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
                if worker.running and worker.interrupt(self._stop_reason):
                    log.warning("%s: interrupted by the stop", worker.name)
        limit = self.settings.memory_limit_mb
        if limit and self._stop_deadline is None and (used := rss_mb()) > limit:
            self.stop(
                f"its memory ({used:.0f} MB) passed WORKER_MEMORY_LIMIT ({limit} MB)",
                exit_code=EXIT_RECYCLE,
                grace=0,
            )
        for deadline in interrupts.stuck(STOP_PATIENCE, now):
            self._give_up_on(deadline)

    def _give_up_on(self, deadline: interrupts.Deadline) -> None:
        """A job that went on after it was interrupted: fail it, saying so, and recycle."""
        worker = next((w for w in self.workers if w.thread_id == deadline.thread_id), None)
        if worker is None or worker.running is None or deadline.given_up:
            return
        deadline.given_up = True
        self._abandoned.add(deadline.thread_id)
        if issubclass(deadline.reason, interrupts.WorkerStopping):
            return  # the stop's own interruption: the process is leaving already
        job, queue = worker.running
        what = "its timeout" if issubclass(deadline.reason, interrupts.JobTimedOut) else "a stop"
        message = (
            f"The job ignored {what}: it went on for {STOP_PATIENCE} s after "
            f"{deadline.reason.__name__} was raised in it (does it catch BaseException?). "
            f"Its worker process was recycled, and it is not retried."
        )
        for execution in list(worker.executions.values()):
            recovery.fail_running(self.connection, queue.name, execution, job, worker.name, message)
        log.error("job %s %s: %s", job.id, job.func_name, message)
        self.stop(
            f"job {job.id} ignored {what}",
            exit_code=EXIT_RECYCLE,
            interruption=interrupts.StoppedForAnotherJob,
        )

    def _heartbeat(self) -> None:
        with self.connection.pipeline(transaction=False) as pipeline:
            for worker, thread in zip(self.workers, self.threads, strict=True):
                if worker.birth_date is None or not thread.is_alive():
                    continue  # not registered yet, or no more
                worker.heartbeat(pipeline=pipeline)
                if running := worker.running:
                    job, queue = running
                    ttl = worker.get_heartbeat_ttl(job)
                    for execution in list(worker.executions.values()):
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
