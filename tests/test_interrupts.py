"""Stopping a job that runs in a thread (``workers.interrupts``), without a worker around it.

Each case runs in a fresh interpreter with a time limit: what goes wrong here is a thread that
never returns, and it must fail the test rather than hang the suite.
"""

import subprocess
import sys

from tests.dynos import ROOT

JOBS_UNDER_A_TRACER = """
import sys, threading
from workers import interrupts

sys.settrace(lambda *args: None)  # as coverage, a debugger or a profiler does

def a_job():
    return sum(range(10))

with interrupts.Deadline(60):
    a_job()
try:
    with interrupts.Deadline(60):
        interrupts.interrupt(threading.get_ident(), interrupts.JobStopped)
        a_job()
except interrupts.JobStopped:
    pass
with interrupts.Deadline(60):
    a_job()
print("still running")
"""

INTERRUPTED_AS_IT_RETURNS = """
import threading, time
from workers import interrupts

job_thread = threading.get_ident()
deadline = interrupts.Deadline(60)
deadline.__enter__()

holding_the_lock = threading.Event()

def monitor():
    # What interrupts.interrupt() does, while the job's thread is blocked on the lock as
    # its deadline's exit begins.
    with interrupts._lock:
        holding_the_lock.set()
        time.sleep(0.2)
        deadline.reason = interrupts.WorkerStopping
        interrupts._set_async_exc(job_thread, interrupts.WorkerStopping)

threading.Thread(target=monitor).start()
holding_the_lock.wait()
deadline.__exit__(None, None, None)  # the job function has returned
print("returned")
for _ in range(1000):
    pass
print("nothing left pending")
"""


def run(program: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_jobs_end_normally_under_a_tracer():
    # Python 3.11 spins forever in a traced thread once an exception raised in it is cancelled.
    assert run(JOBS_UNDER_A_TRACER).split() == ["still", "running"]


def test_an_interrupt_arriving_as_the_job_returns_is_taken_there():
    # The job function had returned: the interrupt lands in the deadline's exit, harmlessly,
    # not later in RQ's bookkeeping.
    assert run(INTERRUPTED_AS_IT_RETURNS).splitlines() == ["returned", "nothing left pending"]
