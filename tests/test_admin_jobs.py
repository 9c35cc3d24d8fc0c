"""The jobs admin (/admin/jobs ...) and ``flask jobs find`` / ``flask jobs edit``: tags set
at enqueue, finding a job anywhere, the retrying and scheduled lists with their actions, and
editing a job that has not run yet."""

import html
import re
import zlib
from datetime import UTC, datetime, timedelta

import pytest
from rq import Worker
from rq.job import Job

from blog import pending_jobs
from blog.queues import (
    LAST_ERROR,
    RETRY_MAX,
    TAGS,
    UnsafeJobArgument,
    backoff,
    enqueue,
    enqueue_many,
    get_queue,
)
from tests.jobs import fail_with
from tests.support.worker import take_next_job
from workers.demo import demo


def fetch(app, job_id: str) -> Job:
    with app.app_context():
        return Job.fetch(job_id, connection=app.extensions["redis"])


# Tags, set where the app enqueues


def test_a_new_post_is_tagged_with_the_post_its_author_and_its_kind(
    client, auth, author_id, fake_jobs
):
    auth.login()
    client.post("/posts/new", data={"title": "Redis", "body": "Redis is fast."})
    (job,) = fake_jobs.jobs
    assert job.tags == ("post:1", f"user:{author_id}", "tagging")


def test_a_signup_tags_the_welcome_email_and_the_reminder(client, auth, fake_jobs):
    auth.signup("new@example.com")
    welcome, reminder = fake_jobs.jobs
    assert welcome.tags == ("email:1", "user:1", "mail")
    assert reminder.tags == ("user:1", "reminder")


def test_tags_reach_redis_in_the_jobs_meta_with_the_retry_max(app):
    with app.app_context():
        job_id = enqueue(demo, 0, "tagged", tags=("demo", "lesson:4"), retry=backoff(3)).id
    meta = fetch(app, job_id).meta
    assert (meta[TAGS], meta[RETRY_MAX]) == (["demo", "lesson:4"], 3)


@pytest.mark.parametrize(
    "tags", ["demo", ("<b>",), ("a b",), ("x" * 49,), tuple(f"t{n}" for n in range(9)), (7,)]
)
def test_tags_that_are_not_short_words_are_refused(app, tags):
    with app.app_context(), pytest.raises(UnsafeJobArgument):
        enqueue(demo, 0, "tagged", tags=tags)


def test_the_demo_command_tags_its_jobs(app, runner):
    result = runner.invoke(args=["jobs", "demo", "--delay", "0", "--tag", "lesson:4"])
    assert result.exit_code == 0, result.output
    assert fetch(app, result.stdout.strip()).meta[TAGS] == ["demo", "lesson:4"]


def test_the_demo_command_refuses_a_bad_tag(app, runner):
    result = runner.invoke(args=["jobs", "demo", "--tag", "no spaces"])
    assert result.exit_code == 2
    assert "Invalid value for --tag" in result.output


def test_a_job_waiting_for_its_retry_keeps_its_last_error_line(app, run_jobs):
    app.config["RETRY_BACKOFF_FACTOR"] = 1  # the retry waits 15 s or more
    with app.app_context():
        job_id = enqueue(fail_with, "the tagger timed out", retry=backoff(2)).id
    run_jobs()
    job = fetch(app, job_id)
    assert (job.get_status(), job.retries_left) == ("scheduled", 1)
    assert job.meta[LAST_ERROR] == "tests.jobs.Failure: the tagger timed out"


# Find


SAME_ORIGIN = {"Origin": "http://localhost"}


@pytest.fixture
def as_admin(auth, admin_id):
    auth.login("root@example.com")


@pytest.fixture
def jobs_everywhere(app, run_jobs) -> dict[str, str]:
    """A job in each of the places a search reads, by state."""
    app.config["RETRY_BACKOFF_FACTOR"] = 1
    with app.app_context():
        ids = {
            "finished": enqueue(demo, 0, "done well", tags=("demo",)).id,
            "failed": enqueue(fail_with, "broken for good", tags=("post:42",)).id,
            "retrying": enqueue(fail_with, "try again", retry=backoff(3), tags=("user:7",)).id,
        }
        run_jobs()
        ids["queued"] = enqueue(demo, 0, "waiting", tags=("demo", "user:7")).id
        ids["scheduled"] = enqueue(demo, 0, "later", delay=timedelta(hours=1), tags=("demo",)).id
    return ids


def found_ids(client, **query) -> list[str]:
    page = client.get("/admin/jobs", query_string=query)
    assert page.status_code == 200
    return re.findall(r'class="job-id" href="/admin/rq/0/view/job/([^"]+)"', page.text)


def test_find_lists_every_job_in_every_place(client, as_admin, jobs_everywhere):
    assert sorted(found_ids(client, q="")) == sorted(jobs_everywhere.values())


def test_the_find_page_searches_only_when_asked(client, as_admin, jobs_everywhere):
    assert found_ids(client) == []
    assert 'href="/admin/jobs?state=failed"' in client.get("/admin/jobs").text


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"q": "broken for"}, ["failed"]),  # argument text
        ({"q": "FAIL_WITH"}, ["failed", "retrying"]),  # function name, any case
        ({"q": "user:7"}, ["retrying", "queued"]),  # a tag, as text
        ({"tag": "demo"}, ["finished", "queued", "scheduled"]),
        ({"tag": "demo", "state": "scheduled"}, ["scheduled"]),
        ({"state": "retrying"}, ["retrying"]),
        ({"q": "nothing like it"}, []),
    ],
)
def test_find_by_text_tag_and_state(client, as_admin, jobs_everywhere, query, expected):
    assert sorted(found_ids(client, **query)) == sorted(jobs_everywhere[s] for s in expected)


def test_find_by_id_and_the_row_says_where_the_job_is(client, as_admin, jobs_everywhere):
    job_id = jobs_everywhere["scheduled"]
    page = client.get("/admin/jobs", query_string={"q": job_id}).text
    assert found_ids(client, q=job_id) == [job_id]
    for shown in ("workers.demo.demo", "(0, &#39;later&#39;)", "scheduled on default"):
        assert shown in page
    assert f'href="/admin/jobs/{job_id}/edit"' in page
    assert 'href="/admin/jobs?tag=demo"' in page


def test_find_escapes_what_jobs_carry(app, client, as_admin):
    with app.app_context():  # round the app's checks, as a job from elsewhere could be
        get_queue("default").enqueue(demo, 0, "<script>alert(1)</script>")
    page = client.get("/admin/jobs?q=").text
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_find_pages_through_many_jobs(app, client, as_admin):
    with app.app_context():
        enqueue_many(demo, [(0, f"job {n}") for n in range(30)], tags=("demo",))
    assert len(found_ids(client, q="")) == 25
    assert len(found_ids(client, q="", page=2)) == 5
    assert client.get("/admin/jobs?q=&page=3").status_code == 404
    assert (
        'href="/admin/jobs?page=2&amp;q=&amp;tag=demo"' in client.get("/admin/jobs?tag=demo").text
    )


def test_flask_jobs_find(app, runner, jobs_everywhere):
    result = runner.invoke(args=["jobs", "find", "user:7"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-1].startswith("2 job(s);")
    assert {line.split()[0] for line in lines[:-1]} == {
        jobs_everywhere["retrying"],
        jobs_everywhere["queued"],
    }
    assert "tests.jobs.fail_with('try again')  user:7" in result.stdout
    result = runner.invoke(args=["jobs", "find", "--tag", "demo", "--state", "queued"])
    assert result.stdout.split()[0] == jobs_everywhere["queued"]


# The retrying and scheduled lists


def retrying_job(app, run_jobs, message="try again", tags=("user:7",)) -> str:
    app.config["RETRY_BACKOFF_FACTOR"] = 1
    with app.app_context():
        job_id = enqueue(fail_with, message, retry=backoff(3), tags=tags).id
    run_jobs()
    return job_id


def due_in(app, job_id: str) -> float:
    with app.app_context():
        registry = get_queue("default").scheduled_job_registry
        return (registry.get_scheduled_time(job_id) - datetime.now(UTC)).total_seconds()


def test_the_retrying_list_shows_attempt_error_and_due_time(app, client, as_admin, run_jobs):
    job_id = retrying_job(app, run_jobs)
    page = client.get("/admin/jobs/retrying").text
    assert job_id in page
    assert "2 of 4" in page  # the first attempt failed; 3 retries in all
    assert "tests.jobs.Failure: try again" in page
    assert "No job is scheduled." in client.get("/admin/jobs/scheduled").text


def test_run_now_makes_one_job_due_at_once(app, client, as_admin, run_jobs):
    job_id = retrying_job(app, run_jobs)
    assert due_in(app, job_id) > 10
    response = client.post(
        "/admin/jobs/retrying", data={"run_one": job_id}, headers=SAME_ORIGIN, follow_redirects=True
    )
    assert "1 job due now: the worker's scheduler puts it on its queue" in html.unescape(
        response.text
    )
    assert due_in(app, job_id) <= 0
    assert fetch(app, job_id).retries_left == 2  # it keeps its place among its attempts


def test_delete_asks_first_then_deletes(app, client, as_admin):
    with app.app_context():
        job_id = enqueue(demo, 0, "later", delay=timedelta(hours=1)).id
    question = client.post(
        "/admin/jobs/scheduled", data={"delete_one": job_id}, headers=SAME_ORIGIN
    )
    assert "Delete 1 scheduled job?" in question.text
    assert Job.exists(job_id, connection=app.extensions["redis"])
    response = client.post(
        "/admin/jobs/scheduled",
        data={"action": "delete", "job": job_id, "confirmed": "1"},
        headers=SAME_ORIGIN,
        follow_redirects=True,
    )
    assert f"1 job deleted ({job_id})." in response.text
    assert not Job.exists(job_id, connection=app.extensions["redis"])
    with app.app_context():
        assert get_queue("default").scheduled_job_registry.count == 0


def test_run_the_ticked_jobs_now(app, client, as_admin):
    with app.app_context():
        ids = [enqueue(demo, 0, f"later {n}", delay=timedelta(hours=1)).id for n in range(3)]
    response = client.post(
        "/admin/jobs/scheduled",
        data={"action": "run", "job": ids[:2]},
        headers=SAME_ORIGIN,
        follow_redirects=True,
    )
    assert "2 jobs due now" in response.text
    assert [due_in(app, job_id) <= 0 for job_id in ids] == [True, True, False]


def test_all_of_a_list_is_done_only_once_confirmed(app, client, as_admin, run_jobs):
    ids = [retrying_job(app, run_jobs, f"try {n}", tags=("x",)) for n in range(2)]
    other = retrying_job(app, run_jobs, "another", tags=("y",))
    question = client.post(
        "/admin/jobs/retrying",
        data={"action": "delete", "all": "1", "tag": "x"},
        headers=SAME_ORIGIN,
    )
    assert "Delete all 2 retrying jobs?" in question.text
    assert all(Job.exists(job_id, connection=app.extensions["redis"]) for job_id in ids)
    client.post(
        "/admin/jobs/retrying",
        data={"action": "delete", "all": "1", "tag": "x", "confirmed": "1"},
        headers=SAME_ORIGIN,
    )
    assert not any(Job.exists(job_id, connection=app.extensions["redis"]) for job_id in ids)
    assert Job.exists(other, connection=app.extensions["redis"])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "Choose Run now or Delete."),
        ({"action": "run"}, "Tick the jobs to run now first."),
        ({"action": "run", "job": "no-such-job"}, "Not run now: There is no job no-such-job"),
        (
            {"action": "run", "job": "not an id"},
            "Not run now: &#39;not an id&#39; is not a job id.",
        ),
    ],
)
def test_each_action_says_why_it_did_nothing(client, as_admin, data, message):
    response = client.post(
        "/admin/jobs/scheduled", data=data, headers=SAME_ORIGIN, follow_redirects=True
    )
    assert message in response.text


def test_run_now_refuses_a_job_that_started(app, client, as_admin):
    with app.app_context():
        queue = get_queue("default")
        job = enqueue(demo, 0, "later", delay=timedelta(hours=1))
        queue.scheduled_job_registry.remove(job)  # as the scheduler moves a due job
        queue.enqueue_job(job)
        worker = Worker([queue], connection=queue.connection)
        worker.register_birth()
        take_next_job(worker)
    response = client.post(
        "/admin/jobs/scheduled",
        data={"run_one": job.id},
        headers=SAME_ORIGIN,
        follow_redirects=True,
    )
    assert f"Not run now: Job {job.id} is started" in response.text


# Editing a pending job


def form_value(page: str, name: str) -> str:
    return html.unescape(re.search(rf'name="{name}"[^>]*value="([^"]*)"', page)[1])


def edit(client, job_id: str, **fields):
    """Post the job's edit form as the page fills it in, with ``fields`` changed."""
    page = client.get(f"/admin/jobs/{job_id}/edit").text
    form = {name: form_value(page, name) for name in ("due", "args", "kwargs")}
    form["queue"] = re.search(r'<option selected value="(\w+)"', page)[1]
    return client.post(
        f"/admin/jobs/{job_id}/edit",
        data={**form, **fields},
        headers=SAME_ORIGIN,
        follow_redirects=True,
    )


def test_reschedule_a_scheduled_job(app, client, as_admin):
    with app.app_context():
        job_id = enqueue(demo, 0, "later", delay=timedelta(hours=1)).id
    due = (datetime.now(UTC) + timedelta(minutes=5)).replace(microsecond=0)
    response = edit(client, job_id, due=due.strftime("%Y-%m-%d %H:%M:%S"))
    assert f"Job {job_id} changed: due {due:%Y-%m-%d %H:%M:%S} UTC." in response.text
    assert 250 < due_in(app, job_id) <= 300


def test_move_a_queued_job_and_change_its_arguments(app, client, as_admin):
    with app.app_context():
        job_id = enqueue(demo, 0, "hello", tags=("demo",)).id
    response = edit(client, job_id, queue="low", args='[0.5, "changed", 0]')
    assert f"Job {job_id} changed: on low, new arguments." in response.text
    job = fetch(app, job_id)
    assert (job.origin, job.args, job.meta[TAGS]) == ("low", (0.5, "changed", 0), ["demo"])
    assert job.description == "workers.demo.demo(0.5, 'changed', 0)"
    with app.app_context():
        assert (get_queue("default").job_ids, get_queue("low").job_ids) == ([], [job_id])


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"args": '[0, "<b>bold</b>", 0]'}, "without &lt; &gt; &amp;"),
        ({"args": '[0, ["a", "list"], 0]'}, "job arguments must be ids or plain values, not list"),
        ({"args": "[0, 'single quotes']"}, "not JSON"),
        ({"args": '{"delay": 0}'}, "a JSON list"),
        ({"args": "[1, 2, 3, 4, 5]"}, "workers.demo.demo would not take them"),
        ({"kwargs": '{"colour": "red"}'}, "workers.demo.demo would not take them"),
        ({"due": "tomorrow"}, "“tomorrow” is not a time like 2026-12-05 09:30:00"),
        ({"queue": "made-up"}, "Not a valid choice"),
    ],
)
def test_bad_input_is_a_form_error_and_changes_nothing(app, client, as_admin, fields, error):
    with app.app_context():
        job_id = enqueue(demo, 0, "later", delay=timedelta(hours=1)).id
    before = fetch(app, job_id).to_dict()
    response = edit(client, job_id, **fields)
    assert error in response.text
    for name, value in fields.items():  # what was typed is still there, to mend
        if name != "queue":
            assert form_value(response.text, name) == value
    assert fetch(app, job_id).to_dict() == before


def test_a_started_job_cannot_be_edited(app, client, as_admin):
    with app.app_context():
        queue = get_queue("default")
        enqueue(demo, 0, "running")
        worker = Worker([queue], connection=queue.connection)
        worker.register_birth()
        job = take_next_job(worker)
    page = client.get(f"/admin/jobs/{job.id}/edit").text
    assert "This job is started: only a job that has not started" in page
    assert 'name="args"' not in page
    response = client.post(
        f"/admin/jobs/{job.id}/edit",
        data={"queue": "low"},
        headers=SAME_ORIGIN,
        follow_redirects=True,
    )
    assert f"Job {job.id} is started: it cannot be changed here." in response.text
    with app.app_context(), pytest.raises(pending_jobs.NotPending, match="is started"):
        pending_jobs.edit(queue.connection, job.id, queue="low")
    assert fetch(app, job.id).origin == "default"


def test_a_job_taken_by_a_worker_meanwhile_is_not_changed(app):
    """A worker takes the job between the edit's look and its write: the transaction fails,
    and the look again finds the job started."""
    with app.app_context():
        queue = get_queue("default")
        job_id = enqueue(demo, 0, "hello").id
        worker = Worker([queue], connection=queue.connection)
        worker.register_birth()

        def taken_meanwhile(job, place, pipeline):
            if job.get_status(refresh=False) == "queued":
                take_next_job(worker)

        with pytest.raises(pending_jobs.NotPending, match="is started"):
            pending_jobs.change(queue.connection, job_id, taken_meanwhile)


def test_unknown_and_impossible_job_ids_are_404s(client, as_admin):
    assert client.get("/admin/jobs/no-such-job/edit").status_code == 404
    assert client.get("/admin/jobs/a.b/edit").status_code == 404


def test_flask_jobs_edit(app, runner):
    with app.app_context():
        job_id = enqueue(demo, 0, "later", delay=timedelta(hours=1), tags=("demo",)).id
    result = runner.invoke(
        args=["jobs", "edit", job_id, "--in", "60", "--queue", "low", "--args", '[0, "hi", 0]']
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(f"Changed: {job_id}")
    assert "scheduled low" in " ".join(result.stdout.split())
    assert "workers.demo.demo(0, 'hi', 0)  demo" in result.stdout
    with app.app_context():
        due = get_queue("low").scheduled_job_registry.get_scheduled_time(job_id)
    assert 50 < (due - datetime.now(UTC)).total_seconds() <= 60


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--args", "[0, {}]"], "Not changed: job arguments must be ids or plain values"),
        (["--args", "nope"], "Invalid value for --args/--kwargs: not JSON"),
        ([], "Say what to change"),
        (["--in", "5", "--at", "2030-01-01T00:00"], "Give --in or --at, not both."),
    ],
)
def test_flask_jobs_edit_refuses_bad_input(app, runner, args, error):
    with app.app_context():
        job_id = enqueue(demo, 0, "later", delay=timedelta(hours=1)).id
    result = runner.invoke(args=["jobs", "edit", job_id, *args])
    assert result.exit_code != 0
    assert error in result.output


@pytest.mark.parametrize("headers", [{}, {"Sec-Fetch-Site": "cross-site"}])
def test_a_post_from_another_site_changes_nothing(app, client, as_admin, headers):
    with app.app_context():
        job_id = enqueue(demo, 0, "later", delay=timedelta(hours=1)).id
    for data in ({"run_one": job_id}, {"action": "delete", "job": job_id, "confirmed": "1"}):
        assert client.post("/admin/jobs/scheduled", data=data, headers=headers).status_code == 403
    assert due_in(app, job_id) > 3000


def test_the_forms_carry_a_csrf_token(app, client, as_admin):
    with app.app_context():
        job_id = enqueue(demo, 0, "later", delay=timedelta(hours=1)).id
    app.config["WTF_CSRF_ENABLED"] = True
    page = client.get("/admin/jobs/scheduled").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)[1]
    refused = client.post("/admin/jobs/scheduled", data={"run_one": job_id}, headers=SAME_ORIGIN)
    assert refused.status_code == 400
    assert due_in(app, job_id) > 3000
    client.post(
        "/admin/jobs/scheduled", data={"run_one": job_id, "csrf_token": token}, headers=SAME_ORIGIN
    )
    assert due_in(app, job_id) <= 0


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_the_real_worker_notes_the_last_error_of_a_job_it_will_retry(
    app, live_redis, rq_worker, client, as_admin, mode
):
    app.config["RETRY_BACKOFF_FACTOR"] = 1  # the retry waits 15 s or more: the burst ends
    with app.app_context():
        job_id = enqueue(demo, 0, "broken", 1.0, retry=backoff(2), tags=("demo",)).id
    rq_worker(env={"WORKER_MODE": mode})
    page = client.get("/admin/jobs/retrying").text
    assert job_id in page
    assert "workers.demo.DemoFailure: demo job failed on purpose (fail rate 100%)" in page
    assert "attempt 2 of 3" in page


def test_a_job_this_app_cannot_read_is_listed_and_left_alone(app, client, as_admin):
    with app.app_context():
        job = enqueue(demo, 0, "fine")
        app.extensions["redis"].hset(job.key, "data", zlib.compress(b"not a pickle"))
    assert "(unreadable)" in client.get("/admin/jobs", query_string={"q": ""}).text
    page = client.get(f"/admin/jobs/{job.id}/edit")
    assert page.status_code == 200
    assert "cannot be read by this app" in page.text
