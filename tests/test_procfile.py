"""``honcho start`` runs the Procfile's web, worker and clock, and they stay up until stopped."""

import json
import os
import signal
import subprocess
import urllib.request

import pytest
from rq import Worker
from rq.cron import CronScheduler

from blog import job_stats
from devtools.embedded_redis import free_port
from tests.dynos import BIN, ROOT, procfile, wait_for

pytestmark = pytest.mark.integration


def test_the_procfile_has_web_worker_and_clock_and_no_release_line():
    # honcho stops everything as soon as one process exits: a release: line would end it.
    assert set(procfile()) == {"web", "worker", "clock"}


def test_app_json_runs_one_of_each_process_with_postgres_and_redis():
    manifest = json.loads((ROOT / "app.json").read_text())
    assert manifest["formation"] == {name: {"quantity": 1} for name in procfile()}
    assert {addon.split(":")[0] for addon in manifest["addons"]} == {
        "heroku-postgresql",
        "heroku-redis",
    }
    assert manifest["env"]["APP_ENV"]["value"] == "production"
    assert manifest["env"]["SECRET_KEY"]["generator"] == "secret"
    assert manifest["healthchecks"]["web"][0]["path"] == "/healthz"


def test_honcho_start_keeps_web_worker_and_clock_up_until_stopped(
    tmp_path, process_env, redis_server
):
    redis = redis_server()
    port = free_port()
    env = {
        **process_env,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'honcho.sqlite3'}",  # empty: web migrates it
        "REDIS_URL": redis.url,
        "PORT": str(port),
    }
    honcho = subprocess.Popen(
        [BIN / "honcho", "start"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    connection = redis.client()
    try:
        wait_for(
            lambda: urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status == 200,
            60,
            "the web process",
        )
        wait_for(lambda: Worker.all(connection=connection), 30, "the worker")
        wait_for(lambda: len(CronScheduler.all(connection)) == 1, 30, "the clock")
        # The clock enqueues its jobs as it starts, and the worker runs them: all three
        # processes have done real work together, and are still up after it.
        wait_for(lambda: job_stats.cached_blog_stats(connection), 60, "refresh_stats to run")
        assert honcho.poll() is None, "honcho stopped on its own"
    finally:
        honcho.send_signal(signal.SIGTERM)
        output, _ = honcho.communicate(timeout=40)
        connection.close()
    for name in ("web", "worker", "clock"):
        assert f"{name}.1 stopped" in output, output
    assert "Running upgrade" in output
