"""The app boots the way a Heroku-like platform boots it, from config variables alone.

Each test runs the Procfile's command lines through ``sh -c`` against a PostgreSQL database of
its own (also when the suite runs on SQLite), talks to the web process over HTTP as the
platform's router would, and stops everything with SIGTERM.
"""

import http.cookiejar
import json
import os
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from urllib.error import HTTPError

import pytest
import sqlalchemy as sa
from redis import Redis
from redis.exceptions import RedisError
from rq.job import Job, JobStatus

from blog.config import database_url
from devtools.embedded_redis import free_port
from tests.dynos import BIN, ROOT, Dyno, platform_env, wait_for
from tests.mail_catcher import MailCatcher

pytestmark = pytest.mark.integration

CI = bool(os.environ.get("CI"))
# What a platform's config would hold, besides the add-ons' URLs and PORT.
PRODUCTION = {
    "APP_ENV": "production",
    "SECRET_KEY": "boot-test-only-not-a-secret",
    "APP_URL": "https://blog.example.com",
}
POST = {
    "title": "Background jobs with Redis",
    "body": "Redis and RQ run the slow work of a Python web app in background jobs.",
    "tags": "deploys",
}


class RouterClient:
    """A browser, as the app sees it from behind the platform's router.

    The router ends HTTPS, speaks plain HTTP to the app and says so in X-Forwarded-Proto,
    which the app trusts through ProxyFix. This client plays browser and router at once: it
    keeps cookies (the session cookie is Secure in production, so the jar lets it travel the
    last, plain-HTTP hop too), and sends each form back with its CSRF token and, as browsers
    do, the page it came from (over HTTPS, Flask-WTF checks the referrer too).
    """

    def __init__(self, base_url: str):
        self.base_url = base_url
        policy = http.cookiejar.DefaultCookiePolicy(secure_protocols=("https", "http"))
        self.cookies = http.cookiejar.CookieJar(policy)
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))
        self.opener.addheaders = [
            ("X-Forwarded-Proto", "https"),
            ("X-Forwarded-For", "203.0.113.7"),
        ]

    def get(self, path: str) -> tuple[int, str]:
        try:
            with self.opener.open(self.base_url + path, timeout=10) as response:
                return response.status, response.read().decode()
        except HTTPError as error:
            return error.code, error.read().decode()

    def submit_form(self, path: str, fields: dict) -> str:
        """Fill in the form at ``path`` and send it; the path it redirects to."""
        status, page = self.get(path)
        assert status == 200, page
        token = re.search(r'name="csrf_token"[^>]* value="([^"]+)"', page).group(1)
        data = urllib.parse.urlencode({"csrf_token": token, **fields}).encode()
        request = urllib.request.Request(self.base_url + path, data=data)
        request.add_header("Referer", "https" + self.base_url.removeprefix("http") + path)
        with self.opener.open(request, timeout=10) as response:
            assert response.status == 200
            return urllib.parse.urlsplit(response.url).path

    def json(self, path: str) -> dict:
        status, body = self.get(path)
        assert status == 200, body
        return json.loads(body)


@pytest.fixture
def dynos(tmp_path):
    """Start Procfile processes; whatever still runs at the end is killed, and the output of
    each is printed (pytest shows it when the test failed)."""
    started = []

    def start(name: str, env: dict) -> Dyno:
        dyno = Dyno(name, env, tmp_path).start()
        started.append(dyno)
        return dyno

    yield start
    for dyno in started:
        dyno.kill()
        print(f"----- {dyno.name} -----\n{dyno.output()}")


def flask(env: dict, *args: str) -> str:
    """A one-off command, as ``heroku run flask ...`` runs it: its output."""
    return subprocess.run(
        [BIN / "flask", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    ).stdout


def wait_until_healthy(client: RouterClient) -> None:
    healthy = {"status": "ok", "database": "ok", "redis": "ok"}
    wait_for(lambda: client.json("/healthz") == healthy, 60, "the web process")


@pytest.fixture
def smtp_server():
    """An SMTP server on localhost that keeps the messages it is sent."""
    catcher = MailCatcher().start()
    yield catcher
    catcher.stop()


def test_a_deploy_boots_serves_runs_jobs_and_stops_cleanly(
    dynos, postgres_database, redis_server, smtp_server
):
    redis = redis_server()
    port = free_port()
    env = platform_env(
        **PRODUCTION,
        DATABASE_URL=postgres_database,
        REDIS_URL=redis.url,
        MAIL_URL=smtp_server.url,
        PORT=port,
        TAGGER_LATENCY=0,
    )
    database = sa.create_engine(database_url(env, instance_path=None))

    def rows(sql: str) -> list:
        with database.connect() as conn:
            return [tuple(row) for row in conn.execute(sa.text(sql))]

    # The web line migrates the empty database, then serves.
    web = dynos("web", env)
    client = RouterClient(f"http://127.0.0.1:{port}")
    wait_until_healthy(client)
    assert "Running upgrade  -> 0001" in web.output()
    worker = dynos("worker", env)

    signup = {"email": "ada@example.com", "password": "correct horse", "confirm": "correct horse"}
    assert client.submit_form("/signup", signup) == "/login"
    login = {"email": "ada@example.com", "password": "correct horse"}
    assert client.submit_form("/login", login) == "/"
    assert {cookie.name: cookie.secure for cookie in client.cookies} == {
        "session": True,
        "known_browser": True,
    }
    assert rows("SELECT email FROM users") == [("ada@example.com",)]
    post_path = client.submit_form("/posts/new", POST)
    assert re.fullmatch(r"/posts/\d+", post_path)

    # What the worker did for the signup and the post.
    def tagging_done():
        status = client.json(f"{post_path}/tags.json")
        return status if status["state"] == "done" else None

    tags = {(tag["name"], tag["source"]) for tag in wait_for(tagging_done, 30, "tags")["tags"]}
    assert ("deploys", "author") in tags
    assert any(source == "tagger" for _, source in tags)
    (welcome,) = wait_for(lambda: smtp_server.messages, 30, "the welcome email")
    assert welcome["To"] == "ada@example.com"
    assert "https://blog.example.com/" in welcome.get_body(("plain",)).get_content()

    # One line per request and one per job start and end, all on stdout.
    assert re.search(r"^POST /posts/new 302 \d+ms", web.output(), re.MULTILINE)
    assert re.search(
        r"job \S+ workers\.tagging\.auto_tag_post on default: finished in \d+\.\d+s",
        worker.output(),
    )
    # Connections stay within the budget of docs/deploy.md: WEB_CONCURRENCY (2) x
    # DATABASE_POOL_SIZE (2) for the web; for the worker, one per thread (5 jobs at a time
    # over 2 processes: 3 each).
    connections = "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
    assert rows(connections)[0][0] - 1 <= 2 * 2 + 2 * 3  # less this query's own

    # A deploy or a restart: SIGTERM to every process, with a slow job running.
    job_id = flask(env, "jobs", "demo", "--delay", "10", "--message", "slow").strip()
    wait_for(
        lambda: f"job {job_id} workers.demo.demo on default: started" in worker.output(),
        30,
        "the slow job to start",
    )
    stopping = time.monotonic()
    web.stop()
    worker.stop()
    assert web.wait(timeout=30) == 0
    assert worker.wait(timeout=30 - (time.monotonic() - stopping)) == 0
    assert time.monotonic() - stopping < 30
    # The worker let the job finish before it left: nothing lost, nothing failed.
    with redis.client() as connection:
        assert Job.fetch(job_id, connection=connection).get_status() == JobStatus.FINISHED
    database.dispose()


def unavailable(reason: str):
    """Skip a test that needs what this machine does not have; in CI, fail it."""
    if CI:
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def tls_redis(tmp_path):
    """A redis-server that speaks TLS only, with a self-signed certificate made here: what
    Heroku's Redis add-on looks like to the app. Yields its ``rediss://`` URL."""
    binary = shutil.which("redis-server")
    if not binary:
        unavailable("this test needs redis-server on the PATH")
    cert, key = tmp_path / "redis.crt", tmp_path / "redis.key"
    make_certificate = "openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=redis.internal"
    subprocess.run(
        [*make_certificate.split(), "-keyout", key, "-out", cert], check=True, capture_output=True
    )
    port = free_port()
    config = tmp_path / "redis.conf"
    config.write_text(
        f"port 0\ntls-port {port}\nbind 127.0.0.1\n"
        f"tls-cert-file {cert}\ntls-key-file {key}\ntls-ca-cert-file {cert}\n"
        'tls-auth-clients no\nsave ""\nappendonly no\n'
    )
    log = tmp_path / "redis.log"
    with log.open("w") as output:
        server = subprocess.Popen([binary, config], cwd=tmp_path, stdout=output, stderr=output)
    url = f"rediss://127.0.0.1:{port}/0"
    probe = Redis.from_url(url, ssl_cert_reqs="none", socket_connect_timeout=1)

    def answers() -> bool:
        if server.poll() is not None:
            unavailable(f"redis-server did not start with TLS: {log.read_text()}")
        try:
            return probe.ping()
        except RedisError:
            return False

    wait_for(answers, 10, "the TLS redis-server")
    yield url
    probe.close()
    server.terminate()
    server.wait(timeout=10)


def test_web_worker_clock_and_dashboard_work_with_a_self_signed_tls_redis(
    dynos, postgres_database, tls_redis
):
    env = platform_env(
        **PRODUCTION,
        DATABASE_URL=postgres_database,
        REDIS_URL=tls_redis,
        REDIS_SSL_CERT_REQS="none",
        PORT=free_port(),
    )
    client = RouterClient(f"http://127.0.0.1:{env['PORT']}")
    web = dynos("web", env)
    wait_until_healthy(client)  # the web process answers PING over TLS
    worker = dynos("worker", env)
    clock = dynos("clock", env)

    job_id = flask(env, "jobs", "demo", "--delay", "0", "--message", "over TLS").strip()
    wait_for(
        lambda: f"job {job_id} workers.demo.demo on default: finished" in worker.output(),
        30,
        "the worker to run the app's job",
    )
    for recurring in ("requeue_stranded_work", "refresh_stats"):
        wait_for(
            lambda name=recurring: (
                f"workers.maintenance.{name} on low: finished" in worker.output()
            ),
            30,
            f"the clock's {recurring}",
        )
    # The dashboard reads the same Redis, over TLS too: an admin sees the worker there.
    flask(env, "users", "create", "admin@example.com", "--admin", "--password", "correct horse")
    client.submit_form("/login", {"email": "admin@example.com", "password": "correct horse"})
    seen = client.json("/admin/rq/0/data/workers.json")["workers"]
    assert seen
    assert all(w["queues"] == ["urgent", "mailers", "default", "low"] for w in seen)

    # The certificate is self-signed: without REDIS_SSL_CERT_REQS=none, the app refuses it.
    verifying = {key: value for key, value in env.items() if key != "REDIS_SSL_CERT_REQS"}
    refused = subprocess.run(
        [BIN / "flask", "jobs", "demo"], cwd=ROOT, env=verifying, capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert "CERTIFICATE_VERIFY_FAILED" in refused.stderr

    for dyno in (web, worker, clock):
        dyno.stop()
    assert [dyno.wait(timeout=30) for dyno in (web, worker, clock)] == [0, 0, 0]
