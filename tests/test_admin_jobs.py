"""The jobs admin (/admin/jobs ...) and ``flask jobs find`` / ``flask jobs edit``: tags set
at enqueue, finding a job anywhere, the retrying and scheduled lists with their actions, and
editing a job that has not run yet."""

import pytest
from rq.job import Job

from blog.queues import LAST_ERROR, RETRY_MAX, TAGS, UnsafeJobArgument, backoff, enqueue
from tests.jobs import fail_with
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
