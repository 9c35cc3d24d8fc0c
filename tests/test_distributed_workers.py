"""Workers on two machines share the queues: a second worker with settings of its own (its
own environment and working folder, its own spelling of the database URL) beside the usual
one, on the same Redis and database."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from rq import Worker
from rq.job import Job
from sqlalchemy import select

from blog.extensions import db
from blog.models import Post, TaggingState
from tests import factories
from tests.conftest import ROOT
from tests.dynos import wait_for
from workers.tagging import schedule_tagging, tagging_job_id

pytestmark = pytest.mark.integration

# Long enough that the first worker is still busy when the second job arrives.
TAGGER_LATENCY = "1.5"


def worker_command() -> list[str]:
    """The Procfile's worker, serving until stopped."""
    return [sys.executable, "-m", "workers"]


def other_machine_env(database_config: dict, tmp_path: Path, redis_url: str) -> dict:
    """Only what a machine of its own would set: nothing inherited from this test run."""
    url = database_config["SQLALCHEMY_DATABASE_URI"]
    if url.startswith("sqlite:///"):
        # The same file, reached through another path, as a mounted volume would be.
        database = Path(url.removeprefix("sqlite:///"))
        mount = tmp_path / "mounted"
        mount.symlink_to(database.parent)
        url = f"sqlite:///{mount / database.name}"
    else:  # the form a platform hands out, which the app turns into SQLAlchemy's own
        url = url.replace("postgresql+psycopg2://", "postgres://", 1)
        url += f"?options=-csearch_path%3D{database_config['TEST_SCHEMA']}"
    return {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}/usr/bin:/bin",
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
        "APP_ENV": "testing",
        "SECRET_KEY": "another-machine",
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "TAGGER_LATENCY": TAGGER_LATENCY,
        "TAGGER_FAILURE_RATE": "0",
        "WORKER_CONCURRENCY": "1",
    }


def test_a_worker_elsewhere_shares_the_queue(
    app, live_redis, author_id, process_env, database_config, tmp_path, test_redis_url
):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    logs = {name: tmp_path / f"{name}.log" for name in ("here", "elsewhere")}
    settings = {
        "here": (
            {**process_env, "TAGGER_LATENCY": TAGGER_LATENCY, "WORKER_CONCURRENCY": "1"},
            ROOT,
        ),
        "elsewhere": (other_machine_env(database_config, tmp_path, test_redis_url), elsewhere),
    }
    workers = []
    try:
        for name, (env, cwd) in settings.items():
            with logs[name].open("w") as log:
                workers.append(
                    subprocess.Popen(
                        worker_command(), env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT
                    )
                )
        wait_for(lambda: len(Worker.all(connection=live_redis)) == 2, 60, "two workers")

        with app.app_context():
            posts = [factories.post(author_id, body="Redis and RQ run jobs.") for _ in range(2)]
            for post in posts:
                schedule_tagging(post)
            db.session.commit()
            job_ids = [tagging_job_id(post) for post in posts]

        def all_tagged():
            with app.app_context():
                db.session.expire_all()
                return all(
                    p.tagging_state == TaggingState.DONE for p in db.session.scalars(select(Post))
                )

        wait_for(all_tagged, 60, "both posts tagged")
    finally:
        for worker in workers:
            worker.terminate()
        for worker in workers:
            worker.wait(timeout=30)

    ran_on = {Job.fetch(job_id, connection=live_redis).worker_name for job_id in job_ids}
    assert len(ran_on) == 2, ran_on  # one job each: both took from the same queue
    assert "auto_tag_post on default: finished" in logs["elsewhere"].read_text()
