"""``flask jobs wait``: returns once no job is waiting or running; the docs' way to wait on
state instead of time."""

from datetime import timedelta

from rq import Worker

from blog.queues import backoff, enqueue, get_queue
from tests.support.worker import take_next_job
from workers.demo import demo


def test_returns_at_once_when_nothing_waits(runner, app):
    result = runner.invoke(args=["jobs", "wait"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("No job waiting or running (waited ")


def test_gives_up_after_its_timeout_saying_what_is_left(runner, app):
    with app.app_context():
        enqueue(demo, 0, "never run: no worker here")
    result = runner.invoke(args=["jobs", "wait", "--timeout", "0"])
    assert result.exit_code == 1
    assert "Still 1 job(s) waiting and 0 running after 0 s." in result.output


def test_retries_count_as_waiting_only_when_asked(runner, app, run_jobs):
    app.config["RETRY_BACKOFF_FACTOR"] = 100  # the retry is due much later
    with app.app_context():
        enqueue(demo, 0, "fails", 1.0, retry=backoff(1))
    run_jobs()
    result = runner.invoke(args=["jobs", "wait", "--timeout", "0"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["jobs", "wait", "--retries", "--timeout", "0"])
    assert "Still 1 job(s) waiting" in result.output


def test_a_job_a_worker_is_running_counts_as_running(runner, app):
    with app.app_context():
        enqueue(demo, 0, "taken by a worker that is still at it")
        queue = get_queue("default")
        worker = Worker([queue], connection=queue.connection)
        worker.register_birth()
        take_next_job(worker)
    result = runner.invoke(args=["jobs", "wait", "--timeout", "0"])
    assert result.exit_code == 1
    assert "Still 0 job(s) waiting and 1 running after 0 s." in result.output


def test_a_queue_of_its_own_ignores_the_others(runner, app):
    with app.app_context():
        enqueue(demo, 0, "waits on low, where no worker runs", queue="low")
    result = runner.invoke(args=["jobs", "wait", "--queue", "urgent", "--timeout", "0"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("No job waiting or running on urgent (waited ")
    result = runner.invoke(args=["jobs", "wait", "--queue", "low", "--timeout", "0"])
    assert "Still 1 job(s) waiting" in result.output


def test_scheduled_jobs_count_when_asked(runner, app):
    with app.app_context():
        enqueue(demo, 0, "later", delay=timedelta(hours=1))
    assert runner.invoke(args=["jobs", "wait", "--timeout", "0"]).exit_code == 0
    result = runner.invoke(args=["jobs", "wait", "--scheduled", "--timeout", "0"])
    assert result.exit_code == 1
    assert "Still 1 job(s) waiting" in result.output


def test_started_returns_once_a_worker_has_taken_every_job(runner, app):
    with app.app_context():
        enqueue(demo, 0, "taken by a worker that is still at it")
        queue = get_queue("default")
        worker = Worker([queue], connection=queue.connection)
        worker.register_birth()
        result = runner.invoke(args=["jobs", "wait", "--started", "--timeout", "0"])
        assert "Still 1 job(s) waiting and 0 running after 0 s." in result.output
        take_next_job(worker)
    result = runner.invoke(args=["jobs", "wait", "--started", "--timeout", "0"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("No job waiting: the workers have taken them all (waited ")


def test_job_waits_for_that_job_to_end_even_one_scheduled_for_later(runner, app, run_jobs):
    with app.app_context():
        later = enqueue(demo, 0, "due in an hour", delay=timedelta(hours=1))
        now = enqueue(demo, 0, "due now")
    result = runner.invoke(args=["jobs", "wait", "--job", later.id, "--timeout", "0"])
    assert result.exit_code == 1
    assert f"Still waiting after 0 s for: {later.id} (scheduled)." in result.output
    run_jobs()
    result = runner.invoke(args=["jobs", "wait", "--job", now.id, "--timeout", "0"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Job {now.id} finished (waited ")
