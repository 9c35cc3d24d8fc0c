"""``flask jobs ...``: the demo job, stats, clear and retry-failed."""

from datetime import UTC, datetime, timedelta

import pytest
from rq import Worker
from rq.job import Job
from rq.worker import WorkerStatus

from blog.queues import get_queue
from tests.support.worker import take_next_job


def invoke(runner, *args, **kwargs):
    result = runner.invoke(args=["jobs", *args], **kwargs)
    assert result.exit_code == 0, result.output
    return result


def test_demo_enqueues_and_prints_the_job_id(runner, app):
    result = invoke(runner, "demo", "--delay", "0", "--message", "hello")
    job_id = result.stdout.strip()
    with app.app_context():
        job = Job.fetch(job_id, connection=app.extensions["redis"])
        assert job.func_name == "workers.demo.demo"
        assert job.args == (0.0, "hello", 0.0)
        assert job.origin == "default"


def test_demo_inline_prints_the_result_and_enqueues_nothing(runner, app):
    result = invoke(runner, "demo", "--delay", "0", "--message", "right here", "--inline")
    assert result.stdout.strip() == "right here"
    with app.app_context():
        assert get_queue("default").count == 0


def test_demo_count_enqueues_in_bulk_on_the_chosen_queue(runner, app):
    result = invoke(runner, "demo", "--delay", "0", "--count", "50", "--queue", "low")
    assert len(result.stdout.split()) == 50
    assert "Enqueued 50 demo job(s) on low." in result.stderr
    with app.app_context():
        assert get_queue("low").count == 50


def test_demo_in_schedules_the_job(runner, app):
    invoke(runner, "demo", "--in", "60")
    with app.app_context():
        queue = get_queue("default")
        assert queue.count == 0
        (job_id,) = queue.scheduled_job_registry.get_job_ids()
        due = queue.scheduled_job_registry.get_scheduled_time(job_id)
        assert timedelta(seconds=55) < due - datetime.now(UTC) < timedelta(seconds=61)


def test_demo_at_a_future_time_schedules_it(runner, app):
    at = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    invoke(runner, "demo", "--at", at)
    with app.app_context():
        assert get_queue("default").scheduled_job_registry.count == 1


def test_demo_at_a_past_time_runs_now(runner, app):
    invoke(runner, "demo", "--at", "2020-01-01T00:00:00+00:00")
    with app.app_context():
        assert get_queue("default").count == 1


def test_demo_refuses_bad_options(runner, app):
    assert runner.invoke(args=["jobs", "demo", "--in", "5", "--at", "12:00"]).exit_code == 2
    result = runner.invoke(args=["jobs", "demo", "--at", "tomorrow"])
    assert result.exit_code == 2 and "is not a time" in result.output
    assert runner.invoke(args=["jobs", "demo", "--queue", "fast"]).exit_code == 2
    assert runner.invoke(args=["jobs", "demo", "--delay", "-1"]).exit_code == 2
    assert runner.invoke(args=["jobs", "demo", "--message", "<b>hi</b>"]).exit_code == 2
    with app.app_context():
        assert get_queue("default").count == 0


@pytest.mark.parametrize(
    "option",
    [["--in", "5"], ["--at", "2030-01-01T12:00"], ["--queue", "default"], ["--retries", "0"]],
)
def test_demo_inline_refuses_scheduling_and_queue_options(runner, app, option):
    result = runner.invoke(args=["jobs", "demo", "--inline", "--delay", "0", *option])
    assert result.exit_code == 2
    assert f"--inline runs the job here and now: drop {option[0]}." in result.output
    assert "hello from a background job" not in result.output  # the job did not run


def test_retries_and_failures_end_in_the_failed_registry(runner, app, run_jobs):
    invoke(runner, "demo", "--delay", "0", "--fail-rate", "1", "--retries", "2")
    run_jobs()
    with app.app_context():
        failed = get_queue("default").failed_job_registry
        assert failed.count == 1
        job = Job.fetch(failed.get_job_ids()[0], connection=app.extensions["redis"])
        assert job.retries_left == 0
        assert "DemoFailure" in job.latest_result().exc_string


def test_stats_shows_every_queue(runner, app):
    invoke(runner, "demo", "--count", "3", "--queue", "low")
    invoke(runner, "demo", "--in", "600")
    lines = invoke(runner, "stats").stdout.splitlines()
    assert lines[0].split() == [
        "queue",
        "waiting",
        "scheduled",
        "retrying",
        "started",
        "failed",
        "deferred",
        "finished",
        "latency",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:5]}
    assert rows["low"][:2] == ["3", "0"]
    assert rows["default"][:2] == ["0", "1"]
    assert rows["urgent"][:7] == ["0"] * 7
    assert "workers: 0 (0 busy)" in lines
    assert "runs: 0 processed, 0 failed (since `flask jobs reset-stats`)" in lines


def test_stats_counts_runs_where_the_registries_count_jobs(runner, app, run_jobs):
    invoke(runner, "demo", "--delay", "0", "--fail-rate", "1", "--retries", "2")
    run_jobs()
    lines = invoke(runner, "stats").stdout.splitlines()
    default = next(line.split() for line in lines if line.startswith("default"))
    assert default[5] == "1"  # one failed job in the registry ...
    assert "runs: 3 processed, 3 failed (since `flask jobs reset-stats`)" in lines  # ... 3 runs


def test_stats_shows_the_job_each_worker_runs(runner, app):
    invoke(runner, "demo", "--queue", "low")
    with app.app_context():
        queue = get_queue("low")
        idle = Worker([get_queue("default")], connection=queue.connection, name="idle-one")
        idle.register_birth()
        idle.set_state(WorkerStatus.IDLE)
        busy = Worker([queue], connection=queue.connection, name="busy-one")
        busy.register_birth()
        job = take_next_job(busy)
    lines = invoke(runner, "stats").stdout.splitlines()
    assert "workers: 2 (1 busy)" in lines
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("  ")}
    assert rows["busy-one"] == ["busy", "low", "workers.demo.demo", f"({job.id})"]
    assert rows["idle-one"] == ["idle", "default", "-"]


def test_stats_tells_retrying_jobs_from_scheduled_ones(runner, app, run_jobs):
    app.config["RETRY_BACKOFF_FACTOR"] = 1  # the retry waits 15 s or more
    invoke(runner, "demo", "--in", "600")
    invoke(runner, "demo", "--delay", "0", "--fail-rate", "1", "--retries", "2")
    run_jobs()
    lines = invoke(runner, "stats").stdout.splitlines()
    default = next(line.split() for line in lines if line.startswith("default"))
    assert default[1:4] == ["0", "1", "1"]  # waiting, scheduled, retrying


def test_clear_asks_first_then_empties_everything(runner, app, run_jobs):
    invoke(runner, "demo", "--count", "2")
    invoke(runner, "demo", "--in", "600")
    invoke(runner, "demo", "--delay", "0", "--fail-rate", "1", "--queue", "urgent")
    run_jobs()  # 2 finished, 1 failed, 1 still scheduled
    invoke(runner, "demo", "--count", "2")
    result = runner.invoke(args=["jobs", "clear"], input="n\n")
    assert result.exit_code == 1
    with app.app_context():
        assert get_queue("default").count == 2
    output = invoke(runner, "clear", "--yes").stdout
    assert "Removed 6 job(s): 2 waiting, 1 scheduled, 1 failed, 2 finished." in output
    with app.app_context():
        for name in ("default", "urgent"):
            queue = get_queue(name)
            assert queue.count == 0
            assert queue.failed_job_registry.count == 0
            assert queue.finished_job_registry.count == 0
            assert queue.scheduled_job_registry.count == 0
    assert invoke(runner, "clear", "--yes").stdout.startswith("Removed 0 job(s).")


def test_retry_failed_requeues_them(runner, app, run_jobs):
    invoke(runner, "demo", "--delay", "0", "--fail-rate", "1", "--count", "2")
    run_jobs()
    assert "Requeued 2 failed job(s)." in invoke(runner, "retry-failed").stdout
    with app.app_context():
        queue = get_queue("default")
        assert queue.count == 2 and queue.failed_job_registry.count == 0


def test_demo_refuses_numbers_that_are_not(runner, app):
    for args in (["--in", "nan"], ["--in", "inf"], ["--in", "1e12"], ["--delay", "nan"]):
        result = runner.invoke(args=["jobs", "demo", *args])
        assert result.exit_code == 2, (args, result.output)
    result = runner.invoke(args=["jobs", "demo", "--at", "0001-01-01T00:00"])
    assert result.exit_code == 2 and "is not a time" in result.output
    with app.app_context():
        assert get_queue("default").count == 0


def test_an_unreachable_redis_is_one_clear_line(runner, app):
    from redis import Redis

    app.extensions["redis"] = Redis.from_url("redis://127.0.0.1:1/0?socket_connect_timeout=1")
    for args in (["demo"], ["stats"], ["retry-failed"], ["clear", "--yes"]):
        result = runner.invoke(args=["jobs", *args])
        assert result.exit_code == 1, result.output
        assert "Cannot reach Redis" in result.output and "Traceback" not in result.output
