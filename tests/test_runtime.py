"""The worker runtime, run for real: crashes, scheduling, memory, timeouts, sessions per job.

Every test runs ``python -m workers`` (the Procfile's worker) on the real test Redis, with a
heartbeat of half a second (``process_env``), so that a dead worker is found in seconds.
"""

import time
from datetime import timedelta

import pytest
import rq
from rq import Retry
from rq.command import send_stop_job_command
from rq.job import Job, JobStatus
from rq.suspension import resume, suspend
from rq.worker import Worker

from blog.queues import enqueue, get_queue
from tests import jobs
from tests.conftest import TEST_DATABASE_URL
from tests.dynos import kill_tree, wait_for
from workers.demo import demo

pytestmark = pytest.mark.integration

STARTS = "test:starts"


def starts(connection) -> list[tuple[str, float]]:
    """The (job id, time) of every run that ``jobs.record_start`` noted."""
    return [
        (job_id, float(at))
        for job_id, at in (entry.decode().split() for entry in connection.lrange(STARTS, 0, -1))
    ]


def status_of(job: Job) -> JobStatus:
    return job.get_status(refresh=True)


def workers_of(connection, pid: int) -> list[Worker]:
    return [w for w in Worker.all(connection=connection) if f".{pid}." in w.name]


def child_pids(process) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(process.pid).children()]


@pytest.mark.parametrize("restart", [True, False], ids=["restarted", "another-worker-alive"])
def test_a_killed_worker_is_replaced_and_its_job_run_again_within_seconds(
    app, live_redis, rq_worker_process, restart
):
    with app.app_context():
        long_job = enqueue(jobs.slow_and_recorded, STARTS, 60, retry=Retry(max=2))
    first = rq_worker_process()
    wait_for(lambda: status_of(long_job) == JobStatus.STARTED, 30, "the long job to start")
    (dead_process,) = child_pids(first)
    survivor = None if restart else rq_worker_process()
    with app.app_context():
        due_soon = get_queue("default").enqueue_in(timedelta(seconds=1), jobs.record_start, STARTS)
    due_at = time.time() + 1

    kill_tree(first.pid)  # the whole dyno, as a platform or the kernel does
    first.wait()
    if restart:
        rq_worker_process()

    wait_for(lambda: len(starts(live_redis)) == 3, 30, "the killed job and the due job to run")
    runs = starts(live_redis)
    assert [job_id for job_id, _ in runs].count(long_job.id) == 2  # killed once, run again
    ((_, due_job_started),) = [run for run in runs if run[0] == due_soon.id]
    assert due_job_started >= due_at - 0.001  # never early, even across a crash
    long_job.refresh()
    assert long_job.get_status() == JobStatus.STARTED
    assert long_job.retries_left == 1  # the crash used one retry
    wait_for(lambda: not workers_of(live_redis, dead_process), 30, "the dead worker to go")
    if survivor:
        assert workers_of(live_redis, child_pids(survivor)[0])


def test_a_job_without_retries_killed_with_its_worker_fails_saying_why(
    app, live_redis, rq_worker_process
):
    with app.app_context():
        job = enqueue(jobs.slow_and_recorded, STARTS, 60)
    worker = rq_worker_process()
    wait_for(lambda: status_of(job) == JobStatus.STARTED, 30, "the job to start")
    (process,) = child_pids(worker)
    kill_tree(process)  # only the process running it: the supervisor sees it die
    wait_for(lambda: status_of(job) == JobStatus.FAILED, 30, "the job to fail")
    assert "died while running it" in job.latest_result().exc_string
    assert len(starts(live_redis)) == 1


@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_a_process_whose_supervisor_is_killed_requeues_its_job_and_stops(
    app, live_redis, rq_worker_process, mode
):
    import psutil

    with app.app_context():
        job = enqueue(jobs.slow_and_recorded, STARTS, 60)
    worker = rq_worker_process(
        env={"WORKER_MODE": mode, "WORKER_CONCURRENCY": "1", "WORKER_SHUTDOWN_GRACE": "0"}
    )
    wait_for(lambda: status_of(job) == JobStatus.STARTED, 30, "the job to start")
    (process,) = child_pids(worker)
    worker.kill()  # the supervisor alone: its process is left with no one to replace it
    worker.wait()
    wait_for(lambda: not psutil.pid_exists(process), 30, "the orphaned process to stop")
    assert status_of(job) == JobStatus.QUEUED  # back on its queue for the next worker
    assert not workers_of(live_redis, process)
    assert "its supervisor" in rq_worker_process.log_path.read_text()


def test_a_dead_schedulers_lock_does_not_stall_scheduled_jobs(app, live_redis, rq_worker_process):
    # What a killed worker leaves behind: RQ's own lock lasts 61 s, and RQ's worker tried to
    # take a free one only every 10 minutes.
    for queue in ("urgent", "mailers", "default", "low"):
        live_redis.set(f"rq:scheduler-lock:{queue}", "a-dead-scheduler", ex=3)
    with app.app_context():
        job = get_queue("default").enqueue_in(timedelta(seconds=0.5), jobs.record_start, STARTS)
    rq_worker_process()
    wait_for(lambda: status_of(job) == JobStatus.FINISHED, 30, "the scheduled job to run")


def test_scheduled_jobs_and_retries_never_start_before_their_time(
    app, live_redis, rq_worker_process
):
    offsets = [0.3, 0.55, 0.8, 1.05, 1.3, 1.55, 1.8, 2.05]
    rq_worker_process()
    with app.app_context():
        # The app's queue keeps the exact time; RQ's own rounds it down to the second.
        queues = [get_queue("default"), rq.Queue("default", connection=live_redis)]
        scheduled = {
            queues[n % 2].enqueue_in(timedelta(seconds=offset), jobs.record_start, STARTS).id: (
                time.time() + offset
            )
            for n, offset in enumerate(offsets)
        }
    wait_for(lambda: len(starts(live_redis)) == len(offsets), 30, "the scheduled jobs")
    for job_id, started in starts(live_redis):
        assert started >= scheduled[job_id] - 0.001, f"{job_id} started early"


def test_the_scheduled_registry_keeps_the_exact_due_time(app, live_redis):
    with app.app_context():
        queue = get_queue("default")
        due = time.time() + 60.25
        job = queue.enqueue_in(timedelta(seconds=60.25), demo, 0, "x")
        stored = queue.scheduled_job_registry.get_scheduled_time(job).timestamp()
    assert abs(stored - due) < 0.05  # RQ alone rounds it down to the second


def test_a_job_over_its_timeout_is_stopped(app, live_redis, rq_worker_process):
    with app.app_context():
        job = enqueue(demo, 60, "too long", job_timeout=1)
    rq_worker_process()
    wait_for(lambda: status_of(job) == JobStatus.FAILED, 30, "the job to time out")
    assert "ran past its timeout of 1 s" in job.latest_result().exc_string


def test_the_cli_sets_a_demo_jobs_timeout(app, live_redis, runner, rq_worker_process):
    result = runner.invoke(args=["jobs", "demo", "--delay", "60", "--timeout", "1"])
    assert result.exit_code == 0, result.output
    assert "timeout 1 s" in result.output
    (job_id,) = get_queue_job_ids(app)
    rq_worker_process()
    job = Job.fetch(job_id, connection=live_redis)
    wait_for(lambda: status_of(job) == JobStatus.FAILED, 30, "the job to time out")


def get_queue_job_ids(app) -> list[str]:
    with app.app_context():
        return get_queue("default").job_ids


def test_a_stop_job_command_stops_a_job_in_a_thread(app, live_redis, rq_worker_process):
    with app.app_context():
        job = enqueue(demo, 60, "stop me")
    rq_worker_process()
    wait_for(lambda: status_of(job) == JobStatus.STARTED, 30, "the job to start")
    send_stop_job_command(live_redis, job.id)
    wait_for(lambda: status_of(job) == JobStatus.STOPPED, 30, "the job to stop")


def test_a_suspended_worker_takes_no_job_until_resumed(app, live_redis, rq_worker_process):
    rq_worker_process()
    wait_for(lambda: Worker.all(connection=live_redis), 30, "the worker to start")
    suspend(live_redis)
    time.sleep(3)  # idle threads look every second, between one-second waits for a job
    with app.app_context():
        job = enqueue(demo, 0, "after the suspension")
    time.sleep(2)
    assert status_of(job) == JobStatus.QUEUED
    resume(live_redis)
    wait_for(lambda: status_of(job) == JobStatus.FINISHED, 30, "the job to run once resumed")


def test_a_worker_thread_shows_busy_while_its_job_runs_then_idle(
    app, live_redis, rq_worker_process
):
    with app.app_context():
        job = enqueue(demo, 2, "keep it busy")
    rq_worker_process(env={"WORKER_CONCURRENCY": "1"})
    wait_for(lambda: status_of(job) == JobStatus.STARTED, 30, "the job to start")
    (worker,) = Worker.all(connection=live_redis)
    assert (worker.get_state(), worker.get_current_job_id()) == ("busy", job.id)
    wait_for(lambda: status_of(job) == JobStatus.FINISHED, 30, "the job to finish")
    wait_for(
        lambda: Worker.find_by_key(worker.key, connection=live_redis).get_state() == "idle",
        10,
        "the worker to show idle",
    )


def test_a_process_over_its_memory_limit_is_recycled_and_its_job_run_again(
    app, live_redis, rq_worker_process, tmp_path
):
    with app.app_context():
        job = enqueue(jobs.hog, 20)
    rq_worker_process(env={"WORKER_MEMORY_LIMIT": "300"})
    wait_for(lambda: status_of(job) == JobStatus.FINISHED, 60, "the job to finish")
    assert job.return_value() == "finished on a fresh process"
    assert "passed WORKER_MEMORY_LIMIT (300 MB)" in (tmp_path / "worker.log").read_text()


@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_each_job_has_its_own_session_and_connection(app, live_redis, rq_worker, mode):
    with app.app_context():
        probe_jobs = [enqueue(jobs.session_probe, STARTS, 0.5) for _ in range(4)]
    worker = rq_worker(env={"WORKER_MODE": mode, "WORKER_CONCURRENCY": "4"})
    probes = [entry.decode().split() for entry in live_redis.lrange(STARTS, 0, -1)]
    assert len(probes) == 4, (
        [(status_of(job), job.latest_result()) for job in probe_jobs],
        worker.stdout,
        worker.stderr,
    )
    if mode == "threads":
        # four jobs at once in one process: four sessions, four database connections
        assert len({pid for pid, _, _ in probes}) == 1
        assert len({session for _, session, _ in probes}) == 4
        assert len({backend for _, _, backend in probes}) == 4
    else:
        # a work-horse per job, each with a connection of its own (never its parent's)
        assert len({pid for pid, _, _ in probes}) == 4
        if TEST_DATABASE_URL:  # PostgreSQL backend pids; SQLite has no server to ask
            assert len({backend for _, _, backend in probes}) == 4


def test_a_bad_setting_stops_the_worker_at_once_with_one_line(process_env):
    import subprocess

    from tests.conftest import worker_command

    result = subprocess.run(
        worker_command(),
        env={**process_env, "WORKER_MODE": "lots"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 78
    expected = "worker: WORKER_MODE must be one of 'threads' or 'fork', not 'lots'"
    assert result.stderr.strip() == expected


def test_a_dedicated_worker_serves_only_its_queues(app, live_redis, rq_worker):
    with app.app_context():
        backlog = enqueue(demo, 0, "default work")
        urgent = enqueue(demo, 0, "urgent work", queue="urgent")
    rq_worker("--queues", "urgent")
    assert status_of(urgent) == JobStatus.FINISHED
    assert status_of(backlog) == JobStatus.QUEUED
