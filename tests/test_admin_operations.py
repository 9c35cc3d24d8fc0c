"""The admin pages that act on the jobs: /admin/workers (pause, resume, quiet), /admin/dead
(failed jobs, requeued or deleted in bulk) and /admin/recurring (schedules, runs, run now)."""

import time

import pytest
from rq import Worker
from rq.cron import CronScheduler
from rq.job import Job, JobStatus

from blog import queue_admin, recurring
from blog.queues import enqueue, get_queue
from tests import jobs
from tests.dynos import wait_for
from tests.jobs import fail_with
from tests.support import html

PAYLOAD = "<b>bold</b>"
SAME_ORIGIN = {"Origin": "http://localhost"}


@pytest.fixture
def as_admin(auth, admin_id):
    auth.login("root@example.com")


def post(client, url: str, **data):
    return client.post(url, data=data, headers=SAME_ORIGIN, follow_redirects=True)


def status_of(app, job_id: str) -> JobStatus | None:
    with app.app_context():
        connection = app.extensions["redis"]
        if not Job.exists(job_id, connection=connection):
            return None
        return Job.fetch(job_id, connection=connection).get_status()


# --- Pause and resume a queue ---------------------------------------------------------------


def test_a_queue_is_paused_and_resumed_from_the_workers_page(app, client, as_admin):
    page = post(client, "/admin/queues/mailers/pause")
    assert "mailers is paused: the workers take none of its jobs within 2 s" in page.text
    with app.app_context():
        assert queue_admin.paused_queues(app.extensions["redis"]) == {"mailers"}
    assert "mailers was paused already." in post(client, "/admin/queues/mailers/pause").text
    assert html.row(client.get("/admin/workers").text, "mailers")[2:] == ["paused", "Resume"]

    assert "mailers is resumed" in post(client, "/admin/queues/mailers/resume").text
    with app.app_context():
        assert queue_admin.paused_queues(app.extensions["redis"]) == set()
    assert "mailers was not paused." in post(client, "/admin/queues/mailers/resume").text
    assert client.post("/admin/queues/nope/pause", headers=SAME_ORIGIN).status_code == 404


# --- Quiet a worker process -----------------------------------------------------------------


@pytest.fixture
def worker_process(app) -> str:
    """The workers of one process of ``python -m workers``, as Redis lists them: its name."""
    with app.app_context():
        for number in (1, 2):
            Worker(
                [get_queue("default")],
                connection=app.extensions["redis"],
                name=f"web-1.4242.a1b2c3.{number}",
            ).register_birth()
    return "web-1.4242.a1b2c3"


def test_quieting_a_process_asks_first_then_tells_it_through_redis(
    app, client, as_admin, worker_process
):
    row = html.row(client.get("/admin/workers").text, worker_process)
    assert row == [worker_process, "0 of 2", "idle", "Quiet…"]
    question = client.get(f"/admin/workers/quiet?process={worker_process}")
    assert f"Quiet {worker_process}?" in question.text
    with app.app_context():
        assert queue_admin.quiet_processes(app.extensions["redis"]) == set()  # not yet

    page = post(client, "/admin/workers/quiet", process=worker_process)
    assert f"{worker_process} is quiet within 2 s" in page.text
    with app.app_context():
        assert queue_admin.quiet_processes(app.extensions["redis"]) == {f"{worker_process}."}
    assert html.row(page.text, worker_process) == [worker_process, "0 of 2", "quieting", ""]


def test_quieting_a_process_that_is_not_running_says_so(app, client, as_admin, worker_process):
    page = post(client, "/admin/workers/quiet", process="web-2.1.ffffff")
    assert "No worker process 'web-2.1.ffffff' is running" in html.text(page.text)
    with app.app_context():
        assert queue_admin.quiet_processes(app.extensions["redis"]) == set()


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_quiet_from_the_page_stops_a_real_worker_taking_jobs(
    app, live_redis, rq_worker_process, client, as_admin, mode
):
    # One process either way: two threads, or one forking worker.
    concurrency = "2" if mode == "threads" else "1"
    worker = rq_worker_process(env={"WORKER_MODE": mode, "WORKER_CONCURRENCY": concurrency})
    with app.app_context():
        warm_up = enqueue(jobs.record_start, "test:starts")
    wait_for(lambda: status_of(app, warm_up.id) == JobStatus.FINISHED, 30, "the worker")
    (process,) = queue_admin_processes(app)
    page = post(client, "/admin/workers/quiet", process=process.name)
    assert f"{process.name} is quiet within 2 s" in page.text
    time.sleep(2.5)  # every process honours it within 2 s
    with app.app_context():
        later = enqueue(jobs.record_start, "test:starts")
    time.sleep(2)
    assert status_of(app, later.id) == JobStatus.QUEUED
    assert [p.state for p in queue_admin_processes(app)] == ["quiet"]
    assert worker.poll() is None  # quiet, not gone
    worker.terminate()
    assert worker.wait(timeout=30) == 0
    assert "quiet" in rq_worker_process.log_path.read_text()


def queue_admin_processes(app):
    with app.test_request_context():
        return queue_admin.worker_processes()


# --- Failed jobs -----------------------------------------------------------------------------


def failed(app, run_jobs, count: int, queue: str = "default") -> list[str]:
    with app.app_context():
        ids = [enqueue(fail_with, f"failure {n}", queue=queue).id for n in range(count)]
    run_jobs()
    return ids


def test_the_failed_jobs_page_lists_each_with_its_call_error_and_dashboard_link(
    app, client, as_admin, run_jobs
):
    with app.app_context():  # round the app's argument check, as an error quoting input would
        job_id = get_queue("low").enqueue(fail_with, PAYLOAD).id
    run_jobs()
    page = client.get("/admin/dead")
    assert PAYLOAD not in page.text
    (row,) = [row for row in html.rows(page.text) if row and row[0] == ""]
    assert row[1] == "tests.jobs.fail_with ('<b>bold</b>') on low"  # the link, then the rest
    assert row[2] == "tests.jobs.Failure: <b>bold</b>"
    assert ("tests.jobs.fail_with", f"/admin/rq/0/view/job/{job_id}") in html.links(page.text)


def test_the_failed_jobs_are_paginated_newest_first(app, client, as_admin, run_jobs):
    ids = failed(app, run_jobs, 27)
    registry = get_queue_registry(app)
    for age, job_id in enumerate(reversed(ids)):  # the first enqueued failed first
        registry.connection.zadd(registry.key, {job_id: time.time() + 1000 - age}, xx=True)
    assert listed(client.get("/admin/dead").text) == list(reversed(ids))[:25]
    assert listed(client.get("/admin/dead?page=2").text) == ids[:2][::-1]
    assert client.get("/admin/dead?page=3").status_code == 404


def listed(page: str) -> list[str]:
    prefix = "/admin/rq/0/view/job/"
    return [href.removeprefix(prefix) for _, href in html.links(page) if href.startswith(prefix)]


def get_queue_registry(app, queue: str = "default"):
    with app.app_context():
        return get_queue(queue).failed_job_registry


def test_requeueing_the_ticked_jobs_asks_first(app, client, as_admin, run_jobs):
    first, second, third = failed(app, run_jobs, 3)
    chosen = [f"default:{first}", f"default:{third}"]
    question = client.get("/admin/dead/confirm", query_string={"action": "requeue", "job": chosen})
    assert "Requeue 2 failed job(s)?" in question.text
    assert {status_of(app, i) for i in (first, second, third)} == {JobStatus.FAILED}  # not yet

    page = post(client, "/admin/dead/requeue", job=chosen)
    assert "Requeued 2 failed job(s) on their queues." in page.text
    assert [status_of(app, i) for i in (first, second, third)] == [
        JobStatus.QUEUED,
        JobStatus.FAILED,
        JobStatus.QUEUED,
    ]
    again = post(client, "/admin/dead/requeue", job=chosen)
    assert "Requeued 0 failed job(s) on their queues. 2 had been requeued" in again.text


def test_deleting_all_the_failed_jobs_asks_first_and_deletes_their_records(
    app, client, as_admin, run_jobs
):
    ids = failed(app, run_jobs, 2) + failed(app, run_jobs, 1, queue="mailers")
    question = client.get("/admin/dead/confirm?action=delete&all=1")
    assert "Delete all 3 failed job(s)?" in question.text
    assert "cannot be undone" in question.text
    page = post(client, "/admin/dead/delete", all="1")
    assert "Deleted 3 failed job(s)." in page.text
    assert "No job has failed for good." in page.text
    assert {status_of(app, job_id) for job_id in ids} == {None}


def test_what_is_not_a_failed_job_is_left_out_and_said(app, client, as_admin, run_jobs):
    (job_id,) = failed(app, run_jobs, 1)
    page = post(client, "/admin/dead/delete", job=[f"default:{job_id}", "nope:x", "default:a b"])
    assert "Deleted 1 failed job(s). 2 choice(s) did not name a failed job" in page.text
    assert (
        "Tick the jobs to act on first"
        in client.get("/admin/dead/confirm?action=delete", follow_redirects=True).text
    )
    assert (
        "Choose Requeue or Delete."
        in client.get(
            f"/admin/dead/confirm?action=drop&job=default:{job_id}", follow_redirects=True
        ).text
    )


# --- Recurring jobs ---------------------------------------------------------------------------


def test_the_recurring_page_shows_each_schedule_its_runs_and_the_next(
    app, client, as_admin, run_jobs
):
    page = client.get("/admin/recurring").text
    assert "No clock is running" in page
    assert (
        "workers.maintenance.refresh_stats schedule every 60 s, on low last run never "
        "next run when a clock runs Run now"
    ) in html.text(page)

    # The clock starts: it enqueues every recurring job once, and records when it will next.
    with app.app_context():
        clock = CronScheduler(connection=app.extensions["redis"])
        clock.load_config_from_file(recurring.CONFIG)
        clock.register_birth()
        clock.enqueue_jobs()
        clock.save()
    run_jobs()
    page = client.get("/admin/recurring").text
    assert "No clock is running" not in page
    (refresh,) = (job for job in clock.get_jobs() if job.name.endswith("refresh_stats"))
    last = status_of(app, refresh.get_job_ids(app.extensions["redis"])[0])
    assert last == JobStatus.FINISHED
    assert (
        "workers.maintenance.refresh_stats schedule every 60 s, on low last run finished "
    ) in html.text(page)
    assert f"next run {format_time(refresh.next_enqueue_time)} Run now" in html.text(page)

    # Run by hand too, and run: the runs add up, newest first.
    post(client, "/admin/recurring/run", name="workers.maintenance.refresh_stats")
    run_jobs()
    assert "last 2 runs 2 finished" in html.text(client.get("/admin/recurring").text)


def format_time(moment) -> str:
    from blog.templating import format_datetime

    return format_datetime(moment)


def test_run_now_enqueues_the_recurring_job_as_the_clock_would(app, client, as_admin):
    page = post(client, "/admin/recurring/run", name="workers.maintenance.trim_dead_jobs")
    assert "Enqueued workers.maintenance.trim_dead_jobs (job " in page.text
    with app.app_context():
        (job,) = get_queue("low").jobs
    assert (job.func_name, job.args, job.timeout) == ("workers.maintenance.trim_dead_jobs", (), 120)
    assert (
        "workers.maintenance.trim_dead_jobs schedule every 60 s, on low last run queued"
    ) in html.text(page.text)

    page = post(client, "/admin/recurring/run", name="os.system")
    assert "There is no recurring job 'os.system'." in html.text(page.text)
    with app.app_context():
        assert len(get_queue("low").jobs) == 1
