"""The benchmark suite still runs against the Procfile's worker: tiny counts, one column."""

import json
import subprocess
import sys

import pytest

from tests.conftest import TEST_DATABASE_URL
from tests.dynos import ROOT, procfile

pytestmark = [
    pytest.mark.bench,
    pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="run once, in the run on SQLite"),
]


def test_the_bench_measures_the_procfile_worker(tmp_path):
    results_file = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--columns",
            "app",
            "--rows",
            "noop,tag-sqlite,scheduled",
            "--scale",
            "0.02",
            "--cap",
            "30",
            "--json",
            str(results_file),
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "app worker (Procfile)" in done.stdout.splitlines()[0]
    report = json.loads(results_file.read_text())
    assert report["columns"]["app"]["command"] == procfile()["worker"]
    results = report["results"]
    assert results["noop"]["app"] > 0
    assert results["tag_sqlite"]["app"] > 0  # the app's own job, on the app's models
    for line in ("scheduled_lateness", "retry_lateness"):
        lateness = results[line]["app"]
        assert -0.05 < lateness["min"] <= lateness["max"] < 30, line  # never early


def test_the_bench_measures_the_recurring_jobs_on_both_databases(tmp_path):
    results_file = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--rows",
            "recurring",
            "--scale",
            "0.005",
            "--json",
            str(results_file),
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(results_file.read_text())["results"]
    both = {"sqlite", "postgres"}
    # A minute's signups looked up at once: the mark, the lookup, the mark again.
    assert results["requeue_round_trips"] == dict.fromkeys(both, 3)
    assert results["stats_round_trips"] == dict.fromkeys(both, 1)  # the figures, stored
    assert all(results["requeue_ms"][database] > 0 for database in both)


def test_the_bench_loads_the_procfile_web_process_and_its_worker(tmp_path):
    results_file = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--rows",
            "web",
            "--web-databases",
            "sqlite",
            "--clients",
            "2",
            "--scale",
            "0.05",
            "--json",
            str(results_file),
            "--log-dir",
            str(tmp_path / "logs"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    log = (tmp_path / "logs" / "web-sqlite-1x1.log").read_text()
    assert f"$ {procfile()['web']}\n" in log
    assert "POST /posts/new 302" in log  # gunicorn's access log: posts were written
    results = {
        line: values["sqlite-1x1"]
        for line, values in json.loads(results_file.read_text())["results"].items()
    }
    assert results["web_errors"] == 0
    for line in ("web_create_rate", "web_index_rate", "web_post_rate", "web_alone", "web_hello"):
        assert results[line] > 0, line
    assert results["web_create_app"] > 0  # read from the Server-Timing header
    assert results["web_tagged_after"] is not None  # the worker tagged every post
