"""No job pays for another's fault, and the worker comes back clean: run for real.

Each test runs ``python -m workers`` (the Procfile's worker) on the real test Redis, with a
heartbeat of half a second (``process_env``) so that dead workers are found in seconds.
"""

import os
import signal
import subprocess
import sys
import threading
import time

import psutil
import pytest
from rq import Retry
from rq.job import Job, JobStatus
from rq.worker import Worker

from blog.queues import Queue, enqueue
from tests import jobs
from tests.conftest import ROOT, worker_command
from tests.dynos import kill_tree, wait_for
from workers.process import EXIT_RECYCLE, HANDLED_SIGNALS, ProcessSettings, WorkerProcess
from workers.recovery import PARKED_PATIENCE

pytestmark = pytest.mark.integration

STARTS = "test:starts"
ONE_PROCESS_OF_FIVE = {"WORKER_CONCURRENCY": "5", "WORKER_PROCESSES": "1"}


def starts(connection) -> list[str]:
    return [entry.decode().split()[0] for entry in connection.lrange(STARTS, 0, -1)]


def status_of(job: Job) -> JobStatus:
    return job.get_status(refresh=True)


def test_a_job_catching_exception_still_stops_at_its_timeout_and_its_neighbours_run_once(
    app, live_redis, rq_worker_process
):
    with app.app_context():
        bad = enqueue(jobs.swallow_exceptions, STARTS, 30, job_timeout=2)
        neighbours = [enqueue(jobs.slow_and_recorded, STARTS, 4) for _ in range(4)]
    worker = rq_worker_process(env=ONE_PROCESS_OF_FIVE)
    wait_for(lambda: all(status_of(j) == JobStatus.FINISHED for j in neighbours), 30, "neighbours")
    assert status_of(bad) == JobStatus.FAILED
    assert "ran past its timeout of 2 s" in bad.latest_result().exc_string
    assert sorted(starts(live_redis)) == sorted([bad.id, *(j.id for j in neighbours)])
    assert "recycl" not in rq_worker_process.log_path.read_text()
    worker.terminate()
    worker.wait(timeout=30)


def test_a_job_ignoring_its_timeout_fails_saying_so_and_its_neighbours_finish_first(
    app, live_redis, rq_worker_process
):
    with app.app_context():
        bad = enqueue(jobs.ignore_interrupts, STARTS, 60, job_timeout=1)
        neighbours = [enqueue(jobs.slow_and_recorded, STARTS, 8) for _ in range(4)]
    worker = rq_worker_process(env={**ONE_PROCESS_OF_FIVE, "WORKER_SHUTDOWN_GRACE": "15"})
    wait_for(lambda: status_of(bad) == JobStatus.FAILED, 30, "the bad job to be failed")
    assert "The job ignored its timeout" in bad.latest_result().exc_string
    wait_for(lambda: all(status_of(j) == JobStatus.FINISHED for j in neighbours), 30, "neighbours")
    # Each neighbour ran once, to the end: none was interrupted, requeued or charged.
    assert sorted(starts(live_redis)) == sorted([bad.id, *(j.id for j in neighbours)])
    assert all(not j.meta.get("interruptions") for j in neighbours)
    log = rq_worker_process.log_path
    wait_for(lambda: "recycled; starting a fresh one" in log.read_text(), 30, "the recycle")
    worker.terminate()
    worker.wait(timeout=30)


@pytest.fixture
def own_signal_handlers():
    """Put back the test process's signal handlers, which a WorkerProcess run here replaces."""
    saved = {signum: signal.getsignal(signum) for signum in HANDLED_SIGNALS}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def test_a_dead_thread_recycles_its_process_after_its_neighbours_finish(
    app, live_redis, caplog, own_signal_handlers
):
    settings = ProcessSettings(threads=3, heartbeat=0.5, shutdown_grace=10, memory_limit_mb=0)
    process = WorkerProcess(live_redis, ["default"], settings, prefix="test-host.1.abc.")
    with app.app_context():
        neighbour = enqueue(jobs.slow_and_recorded, STARTS, 2)
    # Its work loop ends once the neighbour runs, as it would on an error RQ does not expect.
    process.workers[0].run = lambda burst: wait_for(
        lambda: status_of(neighbour) == JobStatus.STARTED, 10, "the neighbour"
    )
    started = time.monotonic()
    assert process.run() == EXIT_RECYCLE
    assert time.monotonic() - started < 8
    assert status_of(neighbour) == JobStatus.FINISHED
    assert "worker thread test-host.1.abc.1 died; recycling its process" in caplog.text


def test_a_job_taken_by_a_single_queue_worker_that_died_before_starting_it_runs(
    app, live_redis, rq_worker_process
):
    with app.app_context():
        job = enqueue(jobs.record_start, STARTS, queue="urgent")
    queue = Queue("urgent", connection=live_redis)
    taken, _ = Queue.dequeue_any([queue], None, connection=live_redis)  # and then it died
    assert taken.id == job.id and queue.count == 0
    worker = rq_worker_process("--queues", "urgent")
    wait_for(lambda: status_of(job) == JobStatus.FINISHED, PARKED_PATIENCE + 15, "the parked job")
    assert starts(live_redis) == [job.id]
    worker.terminate()
    worker.wait(timeout=30)


@pytest.mark.skipif(sys.platform != "linux" or os.geteuid() != 0, reason="needs unshare as root")
def test_a_worker_restarted_in_place_starts_cleanly_and_recovers_its_jobs(
    app, live_redis, process_env, tmp_path
):
    """Same hostname, a fresh PID namespace (so the same pids): a container restarted in
    place after a SIGKILL, as Docker's restart policy or a Kubernetes pod does."""
    with app.app_context():
        job = enqueue(jobs.slow_and_recorded, STARTS, 3, retry=Retry(max=2))
    command = ["unshare", "--pid", "--fork", "--mount-proc", "--uts", "sh", "-c"]
    script = f"hostname dyno-worker-1 && exec {' '.join(worker_command())}"
    env = {**process_env, **ONE_PROCESS_OF_FIVE}

    def boot(n: int) -> subprocess.Popen:
        with open(tmp_path / f"boot{n}.log", "w") as log:
            return subprocess.Popen([*command, script], cwd=ROOT, env=env, stdout=log, stderr=log)

    first = boot(1)
    wait_for(lambda: status_of(job) == JobStatus.STARTED, 30, "the job to start")
    names = {w.name for w in Worker.all(connection=live_redis)}
    kill_tree(first.pid)
    first.wait()
    second = boot(2)
    wait_for(lambda: status_of(job) == JobStatus.FINISHED, 30, "the job to run again")
    assert starts(live_redis) == [job.id, job.id]
    assert all(name.startswith("dyno-worker-1.") for name in names)
    assert names.isdisjoint(w.name for w in Worker.all(connection=live_redis))
    stop_namespace(second)
    output = (tmp_path / "boot2.log").read_text()
    assert "Traceback" not in output and "active worker named" not in output, output


def stop_namespace(unshare: subprocess.Popen) -> None:
    """SIGTERM to the worker in the namespace (unshare does not pass signals on)."""
    (worker,) = psutil.Process(unshare.pid).children()
    worker.terminate()
    worker.wait(timeout=30)
    unshare.wait(timeout=5)


@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_a_worker_with_stuck_jobs_and_a_slow_redis_exits_within_30_seconds(
    app, process_env, redis_server, mode, tmp_path
):
    """The platform's SIGKILL comes 30 s after its SIGTERM; jobs that ignore every
    interruption, and a Redis that pauses every client for a second at a time, must not keep
    the worker past it (WORKER_SHUTDOWN_GRACE at its default, 20 s)."""
    server = redis_server()
    redis = server.client()
    env = {**process_env, "REDIS_URL": server.url, "WORKER_MODE": mode, "WORKER_CONCURRENCY": "2"}
    env.pop("WORKER_SHUTDOWN_GRACE", None)
    queue = Queue("default", connection=redis)
    stuck = [queue.enqueue(jobs.ignore_interrupts, STARTS, 120, job_timeout=600) for _ in range(2)]
    with open(tmp_path / "worker.log", "w") as log:
        worker = subprocess.Popen(worker_command(), cwd=ROOT, env=env, stdout=log, stderr=log)
    wait_for(lambda: all(status_of(j) == JobStatus.STARTED for j in stuck), 30, "the jobs")
    slow = threading.Event()

    def pause_redis():
        while not slow.is_set():
            redis.execute_command("CLIENT", "PAUSE", 1000, "ALL")
            slow.wait(1.2)

    pauser = threading.Thread(target=pause_redis, daemon=True)
    pauser.start()
    stopping = time.monotonic()
    worker.terminate()
    try:
        worker.wait(timeout=30)
    finally:
        slow.set()
        kill_tree(worker.pid)
    assert time.monotonic() - stopping < 30, (tmp_path / "worker.log").read_text()


SIGTERM_AT_THE_FORK = """
import os, signal
from workers import process_app
from workers.supervisor import Supervisor

supervisor = Supervisor(process_app())
supervisor._spawn(0)
(pid,) = supervisor.children
os.kill(pid, signal.SIGTERM)  # while the new process is still setting itself up
_, status = os.waitpid(pid, 0)
print("exit", os.waitstatus_to_exitcode(status))
"""


@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_a_sigterm_sent_as_a_process_is_forked_stops_it_cleanly(process_env, mode):
    """Not lost (the process would run on), not fatal (it would die without a word): the
    process stops as on any SIGTERM, once it has its own handler."""
    result = subprocess.run(
        [sys.executable, "-c", SIGTERM_AT_THE_FORK],
        env={**process_env, "WORKER_MODE": mode},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.stdout.split()[-2:] == ["exit", "0"], result.stdout + result.stderr
