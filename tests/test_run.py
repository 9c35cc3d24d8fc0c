"""``make run`` (bin/run) in development: a change to a .py file restarts the processes, so
the worker never runs old code; Redis, and what it holds, stay."""

import os

import pytest
from redis import Redis
from rq import Queue, Worker

from devtools.embedded_redis import free_port
from tests.console_docs import VENV_BIN, LiveApp, copy_checkout
from tests.dynos import wait_for

pytestmark = pytest.mark.integration


def test_a_changed_python_file_restarts_the_worker_with_the_new_code(tmp_path):
    checkout = copy_checkout(tmp_path / "checkout")
    env = {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "PYTHONPATH": str(checkout),
        "PYTHONUNBUFFERED": "1",
        "PORT": str(free_port()),
    }
    app = LiveApp(checkout, env, tmp_path / "make-run.log")
    try:
        app.start({}, [])
        with Redis.from_url((checkout / "instance" / "redis_url").read_text()) as redis:
            redis.set("survives", "a restart")
            before = {w.name for w in Worker.all(connection=redis)}

            demo = checkout / "workers" / "demo.py"
            demo.write_text(demo.read_text().replace('"demo: done: %s"', '"demo: new code: %s"'))
            wait_for(lambda: "demo.py changed: restarting" in app.output(), 30, "the restart")
            app.wait_until_ready(workers=1)
            after = wait_for(
                lambda: {w.name for w in Worker.all(connection=redis)} - before,
                60,
                "a new worker",
            )
            assert not before & {w.name for w in Worker.all(connection=redis)}, after
            assert redis.get("survives") == b"a restart"
            Queue("default", connection=redis).enqueue("workers.demo.demo", 0, "fresh")
            wait_for(lambda: "demo: new code: fresh" in app.output(), 60, "the new code to run")
    finally:
        app.stop()
    assert "run: stopped Redis" in app.output()
