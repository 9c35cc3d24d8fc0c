"""Stopping a job that runs in a thread: for its timeout, a stop command, or a shutdown.

A thread cannot be killed. CPython can only raise an exception in it
(``PyThreadState_SetAsyncExc``), which happens at its next Python instruction: a job stuck
inside one long C call (a ``time.sleep(60)``, a socket read without a timeout) notices only
when that call returns. So the app's own jobs sleep in short steps and give their network
calls timeouts, and a worker process whose job does not stop soon after the exception was
raised gives up on it and restarts (see ``workers.process``).

The exception is only raised while the job's function runs: between ``Deadline.__enter__`` and
``__exit__``, which RQ puts around ``job.perform()``. Raised anywhere else it could break RQ's
own bookkeeping of the job.
"""

import ctypes
import functools
import threading
import time

_lock = threading.Lock()
_running: dict[int, "Deadline"] = {}  # thread id -> the job function it runs right now


class JobInterrupted(BaseException):
    """Raised inside a running job to stop it. A BaseException, as ``SystemExit`` is, so that
    a job's ``except Exception`` does not swallow it: job code catches ``Exception`` broadly,
    and a job that swallowed its timeout would run on, holding its thread."""

    message = "the job was interrupted"

    def __init__(self, *args):
        super().__init__(*(args or (self.message,)))


class JobTimedOut(JobInterrupted):
    message = "the job ran past its timeout"


class JobStopped(JobInterrupted):
    message = "the job was stopped by a stop-job command"


class WorkerStopping(JobInterrupted):
    """The worker stops (a shutdown, a memory recycle): the job goes back to its queue, and
    the interruption counts against it, in case the job is what makes the worker stop."""

    message = "the worker is stopping; the job goes back to the front of its queue"
    charged = True


class StoppedForAnotherJob(WorkerStopping):
    """The worker is recycled because another job would not stop: the job goes back to its
    queue, and nothing counts against it."""

    message = (
        "the worker is recycled because another job ignored its interruption; "
        "the job goes back to the front of its queue"
    )
    charged = False


class Deadline:
    """RQ's death penalty for jobs in threads: the job's function registers here while it runs,
    and the process's monitor raises ``JobTimedOut`` in it once ``timeout`` has passed."""

    def __init__(self, timeout, exception=JobTimedOut, **kwargs):
        self.thread_id = threading.get_ident()
        self.timeout = timeout
        self.at = time.monotonic() + timeout if timeout and timeout > 0 else None
        self.interrupted_at: float | None = None
        self.reason: type[JobInterrupted] | None = None
        self.given_up = False  # the process gave up on the job: it went on after the interrupt

    @functools.cached_property
    def timed_out(self) -> type[JobTimedOut]:
        """The exception to raise, made when needed: its message says the timeout."""
        message = f"the job ran past its timeout of {self.timeout} s"
        return type("JobTimedOut", (JobTimedOut,), {"message": message})

    def __enter__(self):
        with _lock:
            _running[self.thread_id] = self

    def __exit__(self, exc_type, exc, traceback):
        try:
            with _lock:
                _running.pop(self.thread_id, None)  # from here on, nothing can interrupt it
            if self.reason is not None:
                _receive_pending_interrupt()
        except JobInterrupted:
            # Delivered just as the function returned: it finished, so let that stand.
            with _lock:
                _running.pop(self.thread_id, None)
        return False


def interrupt(thread_id: int, reason: type[JobInterrupted]) -> bool:
    """Raise ``reason`` in the job that thread ``thread_id`` runs, if it runs one right now."""
    with _lock:
        deadline = _running.get(thread_id)
        if deadline is None or deadline.reason is not None:
            return False
        deadline.reason = reason
        deadline.interrupted_at = time.monotonic()
        _set_async_exc(thread_id, reason)
        return True


def overdue(now: float | None = None) -> list[Deadline]:
    """The running jobs past their timeout that were not interrupted yet."""
    now = time.monotonic() if now is None else now
    with _lock:
        return [d for d in _running.values() if d.reason is None and d.at and d.at <= now]


def stuck(patience: float, now: float | None = None) -> list[Deadline]:
    """The running jobs interrupted more than ``patience`` seconds ago that still run."""
    now = time.monotonic() if now is None else now
    with _lock:
        return [
            d for d in _running.values() if d.interrupted_at and d.interrupted_at + patience < now
        ]


def _receive_pending_interrupt() -> None:
    """Let an interrupt raised just as the job's function returned arrive here, where it harms
    nothing, rather than in RQ's bookkeeping after it.

    CPython delivers it at the thread's next check for pending work: the calls just before
    this one usually make one, and a function call and a loop make sure of it. Cancelling it
    instead (``PyThreadState_SetAsyncExc`` with NULL) is no good: on Python 3.11 the pending
    flag then stays up, and a thread running under a tracer (coverage, a debugger, a
    profiler) spins on it forever.
    """
    for _ in range(2):
        pass


def _set_async_exc(thread_id: int, exception: type[BaseException]) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exception)
    )
