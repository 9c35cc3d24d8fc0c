"""Fixtures in the style of Flask's tutorial: ``app``, ``client``, ``runner`` and ``auth``.

The suite runs on SQLite by default and on PostgreSQL when ``TEST_DATABASE_URL`` names one.
On PostgreSQL every run works in a schema of its own, created here and dropped at the end,
so nothing that the tests did not create is ever touched.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import fakeredis
import pytest
import sqlalchemy as sa
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError

os.environ["APP_ENV"] = "testing"

from blog import create_app, queues
from blog.config import database_url
from blog.extensions import db
from devtools.embedded_redis import EmbeddedRedis
from tests import factories
from tests.dynos import kill_tree
from tests.mail_catcher import MailCatcher
from tests.support.config import TEST_CONFIG

ROOT = Path(__file__).resolve().parent.parent
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL", "")
# The PostgreSQL server for the tests that need one even when the suite runs on SQLite (they
# boot the app as a platform does); CI always has one here.
TEST_POSTGRES_URL = TEST_DATABASE_URL or "postgresql://postgres@127.0.0.1:5432/postgres"


@pytest.fixture(scope="session")
def test_redis_url():
    """The real Redis for the integration tests: ``TEST_REDIS_URL``, else database 9 of the
    Redis on 127.0.0.1:6379, else a Redis server of the suite's own (stopped at the end), so
    that ``make test`` needs no Redis installed. Looked for only when a test needs it."""
    if os.environ.get("TEST_REDIS_URL"):
        yield os.environ["TEST_REDIS_URL"]
        return
    local = "redis://127.0.0.1:6379/9"
    try:
        with Redis.from_url(local, socket_connect_timeout=1) as probe:
            probe.ping()
    except RedisError:
        server = EmbeddedRedis().start()
        yield server.url
        server.stop()
    else:
        yield local


@pytest.fixture
def needs_integration_mark(request):
    """Fail a test that uses the real Redis or a worker process without saying so: ``make
    test-fast`` leaves out the tests marked integration, and must need neither."""
    if request.node.get_closest_marker("integration") is None:
        pytest.fail(f"{request.node.name} needs the real Redis: mark it @pytest.mark.integration")


def pytest_collection_modifyitems(items):
    """The browser, docs and bench tests start a whole app, Redis included: they count as
    integration tests, which ``make test-fast`` leaves out."""
    for item in items:
        if any(item.get_closest_marker(name) for name in ("browser", "docs", "bench")):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def postgres_schema():
    """A fresh schema on the test PostgreSQL server for this run, or None on SQLite."""
    if not TEST_DATABASE_URL:
        yield None
        return
    url = database_url({"DATABASE_URL": TEST_DATABASE_URL}, instance_path=None)
    schema = f"test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield url, schema
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture
def postgres_database():
    """A new, empty PostgreSQL database of this test's own, dropped at the end.

    Yields its URL in the ``postgres://`` form that platforms hand out.
    """
    server = sa.make_url(database_url({"DATABASE_URL": TEST_POSTGRES_URL}, instance_path=None))
    name = f"test_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(server, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as error:
        engine.dispose()
        if os.environ.get("CI"):
            raise
        pytest.skip(f"these tests need PostgreSQL at {server!r}: {error.orig}")
    yield server.set(drivername="postgres", database=name).render_as_string(hide_password=False)
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    engine.dispose()


@pytest.fixture
def database_config(postgres_schema, tmp_path) -> dict:
    """Config keys that point the app at this test's database."""
    if postgres_schema is None:
        return {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'test.sqlite3'}",
            "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"timeout": 15}},
        }
    url, schema = postgres_schema
    return {
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": {
            "connect_args": {"options": f"-csearch_path={schema}"},
            "pool_pre_ping": True,
        },
        "TEST_SCHEMA": schema,
    }


@pytest.fixture
def process_env(database_config, test_redis_url, needs_integration_mark) -> dict:
    """Environment for a subprocess (a worker, the clock, the web) that must share this test's
    database and the real test Redis."""
    url = database_config["SQLALCHEMY_DATABASE_URI"]
    if "TEST_SCHEMA" in database_config:
        url += f"?options=-csearch_path%3D{database_config['TEST_SCHEMA']}"
    return {
        **os.environ,
        "APP_ENV": "testing",
        "DATABASE_URL": url,
        "REDIS_URL": test_redis_url,
        "TAGGER_LATENCY": "0",
        "TAGGER_FAILURE_RATE": "0",
        "RETRY_BACKOFF_FACTOR": "0",
        "MAIL_URL": "",
        "PYTHONUNBUFFERED": "1",
        # A dead worker's jobs are recovered after 4 missed heartbeats: 2 s, not 20.
        "WORKER_HEARTBEAT": "0.5",
        # One process (the default is two), so that a test can find and kill "the" process.
        "WORKER_PROCESSES": "1",
    }


def worker_command(*extra_args: str) -> list[str]:
    """The Procfile's worker: ``python -m workers``."""
    return [sys.executable, "-m", "workers", *extra_args]


@pytest.fixture
def rq_worker(process_env):
    """Run the Procfile's worker until the queues are empty."""

    def run(*extra_args: str, env: dict | None = None, timeout: float = 60):
        return subprocess.run(
            worker_command("--burst", *extra_args),
            env={**process_env, **(env or {})},
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=True,
        )

    return run


@pytest.fixture
def rq_worker_process(process_env, tmp_path):
    """Start the Procfile's worker in the background, for tests that kill it or its
    work-horse; its output goes to ``tmp_path / "worker.log"``. Killed at the end."""
    processes = []

    def start(*extra_args: str, env: dict | None = None) -> subprocess.Popen:
        with open(tmp_path / "worker.log", "a") as log:
            process = subprocess.Popen(
                worker_command(*extra_args),
                env={**process_env, **(env or {})},
                cwd=ROOT,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        return process

    start.log_path = tmp_path / "worker.log"
    yield start
    for process in processes:
        kill_tree(process.pid)
        process.wait()


@pytest.fixture
def make_app(database_config):
    """Build an app on this test's database with ``overrides``; unless they name a Redis, it
    gets an in-memory one (fakeredis) of its own."""
    apps = []

    def make(**overrides) -> Flask:
        app = create_app({**TEST_CONFIG, **database_config, **overrides})
        if "REDIS_URL" not in overrides:
            app.extensions["redis"] = fakeredis.FakeRedis(server=fakeredis.FakeServer())
        apps.append(app)
        return app

    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def app(make_app):
    """The app on a fresh database, with an in-memory Redis (fakeredis) of its own."""
    app = make_app()
    with app.app_context():
        db.create_all()
    yield app
    with app.app_context():
        db.session.remove()
        if db.engine.dialect.name == "postgresql":
            tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            with db.engine.begin() as conn:
                conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))


@pytest.fixture
def live_redis(app, test_redis_url, needs_integration_mark):
    """Point the app at the real Redis (its test database), emptied before and after."""
    connection = queues.connect(test_redis_url)
    connection.flushdb()
    app.extensions["redis"] = connection
    yield connection
    connection.flushdb()
    connection.close()


@pytest.fixture
def redis_server(needs_integration_mark):
    """Start throw-away Redis servers (for tests that stop or restart Redis); all are
    stopped at the end."""
    servers = []

    def start() -> EmbeddedRedis:
        server = EmbeddedRedis().start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def mail_catcher(app):
    """A real SMTP server on localhost, and the app sending its mail there."""
    catcher = MailCatcher().start()
    app.config["MAIL_URL"] = catcher.url
    yield catcher
    catcher.stop()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def app_ctx(app):
    """Run the test body inside an app context, for tests that use the models directly."""
    with app.app_context():
        yield


class AuthActions:
    def __init__(self, client):
        self._client = client

    def signup(self, email="new@example.com", password="correct horse", confirm=None):
        return self._client.post(
            "/signup",
            data={"email": email, "password": password, "confirm": confirm or password},
        )

    def login(self, email="ada@example.com", password=factories.PASSWORD, **extra):
        return self._client.post("/login", data={"email": email, "password": password, **extra})

    def logout(self):
        return self._client.post("/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def author_id(app):
    """A user who has written nothing yet."""
    with app.app_context():
        return factories.user("ada@example.com").id


@pytest.fixture
def other_user_id(app):
    """A second user, to check that one cannot touch the other's posts."""
    with app.app_context():
        return factories.user("grace@example.com").id


@pytest.fixture
def admin_id(app):
    """An admin: the one user who may reach /admin."""
    with app.app_context():
        return factories.user("root@example.com", admin=True).id


@pytest.fixture
def fake_jobs(app):
    """Jobs are recorded instead of enqueued (``JOBS_MODE=fake``): assert on
    ``fake_jobs.jobs`` (each with its queue, func, args, kwargs, delay, options and tags), or
    ``fake_jobs.drain()`` to run them."""
    app.config["JOBS_MODE"] = "fake"
    return app.extensions["fake_jobs"]


@pytest.fixture
def inline_jobs(app):
    """Jobs run at once, where they are enqueued (``JOBS_MODE=inline``); see blog.job_modes."""
    app.config["JOBS_MODE"] = "inline"


@pytest.fixture
def run_jobs(app):
    """Run every queued job, in this process, until the queues are empty (like --burst)."""
    from blog.queues import QUEUE_NAMES
    from tests.support.worker import InProcessWorker

    def run() -> bool:
        with app.app_context():
            connection = app.extensions["redis"]
            worker = InProcessWorker(list(QUEUE_NAMES), connection=connection)
            return worker.work(burst=True)

    return run
