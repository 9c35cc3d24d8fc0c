"""/metrics: Prometheus's view of the jobs, queues and workers, for admins and a bearer token."""

import json
import re
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from blog.config import ConfigError, from_environment
from blog.queues import backoff, enqueue
from devtools.embedded_redis import free_port
from tests import jobs
from tests.dynos import ROOT, Dyno, platform_env, wait_for
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
    with pytest.raises(ConfigError, match="METRICS_TOKEN must be at least 16") as error:
        from_environment(tmp_path, {"APP_ENV": "development", "METRICS_TOKEN": "secret"})
    assert "secret" not in str(error.value)
    config = from_environment(tmp_path, {"APP_ENV": "development", "METRICS_TOKEN": TOKEN})
    assert config["METRICS_TOKEN"] == TOKEN


def get(client, path: str, **kwargs) -> int:
    """A request, closed as a server closes it once sent: that is when its count is written."""
    with client.get(path, **kwargs) as response:
        return response.status_code


def test_web_requests_are_counted_by_endpoint_method_and_status(app, client, token):
    for _ in range(3):
        assert get(client, "/healthz") == 200
    assert get(client, "/no-such-page") == 404
    assert get(client, "/metrics") == 401

    samples = scrape(client)
    health = {"endpoint": "health.healthz", "method": "GET"}
    assert sample(samples, "blog_http_requests_total", **health, status="200") == 3
    assert sample(samples, "blog_http_requests_total", endpoint="none", method="GET", status="404")
    metrics = {"endpoint": "prometheus.metrics", "method": "GET"}
    assert sample(samples, "blog_http_requests_total", **metrics, status="401") == 1
    assert sample(samples, "blog_http_request_duration_seconds_count", **health) == 3
    assert sample(samples, "blog_http_request_duration_seconds_bucket", **health, le="+Inf") == 3


def test_a_request_is_answered_when_its_count_cannot_be_written(make_app, caplog):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    assert get(app.test_client(), "/healthz") == 503  # says Redis is down, as it should
    assert "request metrics not recorded" in caplog.text


@pytest.mark.integration
def test_the_requests_of_every_gunicorn_worker_add_up(
    app, live_redis, test_redis_url, postgres_database, tmp_path
):
    port = free_port()
    env = platform_env(
        DATABASE_URL=postgres_database,
        REDIS_URL=test_redis_url,
        PORT=port,
        WEB_CONCURRENCY=3,
        APP_ENV="production",
        SECRET_KEY="metrics-test-only-not-a-secret",
        APP_URL="https://blog.example.com",
        METRICS_TOKEN=TOKEN,
    )
    web = Dyno("web", env, tmp_path).start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(f"{base}/healthz", timeout=5), 60, "the web")
        for _ in range(30):
            urllib.request.urlopen(f"{base}/login", timeout=5).read()

        def logins() -> float:
            request = urllib.request.Request(f"{base}/metrics", headers=BEARER)
            text = urllib.request.urlopen(request, timeout=5).read().decode()
            samples = {
                (s.name, s.labels.get("endpoint"), s.labels.get("status")): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }
            return samples.get(("blog_http_requests_total", "auth.login", "200"))

        assert wait_for(lambda: logins() == 30, 10, "the 30 requests to be counted")
        workers = {
            line.split()[-1] for line in web.output().splitlines() if "Booting worker" in line
        }
        assert len(workers) == 3
    finally:
        web.kill()


def test_the_dashboard_and_the_deploy_docs_query_only_series_that_metrics_serves(
    app, client, token, run_jobs
):
    with app.app_context():
        enqueue(demo, 0, "fine")
    run_jobs()
    assert get(client, "/") == 200
    served = {name for name, _ in scrape(client)}

    dashboard = json.loads((ROOT / "docs" / "grafana-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    deploy = (ROOT / "docs" / "deploy.md").read_text()
    queries += re.findall(r"^- [^`\n]*: `(.+)`", deploy, re.MULTILINE)
    assert len(queries) > 10
    named = {name for query in queries for name in re.findall(r"\bblog_\w+", query)}
    assert named - served == set()
    # And each panel of the dashboard says which Prometheus it reads.
    assert {panel["datasource"]["uid"] for panel in dashboard["panels"]} == {"${datasource}"}
