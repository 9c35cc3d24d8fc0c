"""/metrics: Prometheus's view of the jobs, queues and workers, for admins and a bearer token."""

import pytest
from prometheus_client.parser import text_string_to_metric_families

from blog.config import ConfigError, from_environment
from blog.queues import backoff, enqueue
from tests import jobs
from workers.demo import demo

TOKEN = "a-token-long-enough-to-guess-never"
BEARER = {"Authorization": f"Bearer {TOKEN}"}


def scrape(client, headers=BEARER) -> dict[tuple, float]:
    """Every sample of /metrics, by its name and labels."""
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(samples: dict, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def token(app):
    app.config["METRICS_TOKEN"] = TOKEN


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "wrong token", "not a bearer"],
)
def test_without_the_token_it_is_refused(client, token, headers):
    response = client.get("/metrics", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert "blog_jobs" not in response.text


def test_with_no_token_configured_only_admins_see_it(client, auth, author_id, admin_id):
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404
    auth.login()
    assert client.get("/metrics").status_code == 404
    auth.logout()
    auth.login("root@example.com")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"


def test_job_counts_and_histograms_match_the_jobs_run(app, client, token, run_jobs):
    with app.app_context():
        enqueue(demo, 0, "fine")
        enqueue(demo, 0.3, "slow")
        enqueue(demo, 0, "broken", 1.0, retry=backoff(1))
        enqueue(jobs.noop, queue="low")
    run_jobs()

    samples = scrape(client)
    demo_ok = {"function": "workers.demo.demo", "queue": "default", "outcome": "finished"}
    demo_failed = {**demo_ok, "outcome": "failed"}
    assert sample(samples, "blog_jobs_total", **demo_ok) == 2
    assert sample(samples, "blog_jobs_total", **demo_failed) == 2  # the attempt and its retry
    noop_ok = {"function": "tests.jobs.noop", "queue": "low", "outcome": "finished"}
    assert sample(samples, "blog_jobs_total", **noop_ok) == 1

    assert sample(samples, "blog_job_duration_seconds_count", **demo_ok) == 2
    assert sample(samples, "blog_job_duration_seconds_bucket", **demo_ok, le="0.25") == 1
    assert sample(samples, "blog_job_duration_seconds_bucket", **demo_ok, le="+Inf") == 2
    assert sample(samples, "blog_job_duration_seconds_sum", **demo_ok) >= 0.3
    assert sample(samples, "blog_job_wait_seconds_count", **demo_ok) == 2


def test_queues_and_workers_are_shown_as_they_are(app, client, token):
    with app.app_context():
        enqueue(demo, 0, "waiting")
        enqueue(demo, 0, "waiting too", queue="low")
    samples = scrape(client)
    assert sample(samples, "blog_queue_jobs", queue="default", state="waiting") == 1
    assert sample(samples, "blog_queue_jobs", queue="urgent", state="waiting") == 0
    assert sample(samples, "blog_queue_latency_seconds", queue="low") >= 0
    assert sample(samples, "blog_workers", state="busy") == 0


@pytest.mark.integration
def test_the_procfile_workers_jobs_are_counted(app, live_redis, client, token, rq_worker):
    with app.app_context():
        for _ in range(5):
            enqueue(jobs.noop)
        enqueue(demo, 0, "broken", 1.0)
    rq_worker(env={"WORKER_PROCESSES": "2"})

    samples = scrape(client)
    noop_ok = {"function": "tests.jobs.noop", "queue": "default", "outcome": "finished"}
    assert sample(samples, "blog_jobs_total", **noop_ok) == 5
    assert sample(samples, "blog_job_duration_seconds_count", **noop_ok) == 5
    demo_failed = {"function": "workers.demo.demo", "queue": "default", "outcome": "failed"}
    assert sample(samples, "blog_jobs_total", **demo_failed) == 1
    assert sample(samples, "blog_queue_jobs", queue="default", state="failed") == 1


def test_a_short_token_stops_the_app_at_start(tmp_path):
    with pytest.raises(ConfigError, match="METRICS_TOKEN"):
        from_environment(tmp_path, {"APP_ENV": "development", "METRICS_TOKEN": "secret"})
    config = from_environment(tmp_path, {"APP_ENV": "development", "METRICS_TOKEN": TOKEN})
    assert config["METRICS_TOKEN"] == TOKEN
