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


def run_bench(tmp_path, *args: str, timeout: float) -> tuple[str, dict]:
    """``python -m bench ARGS`` in a subprocess: what it printed, and its JSON report."""
    results_file, logs = tmp_path / "results.json", tmp_path / "logs"
    done = subprocess.run(
        [sys.executable, "-m", "bench", *args, "--json", str(results_file), "--log-dir", str(logs)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout, json.loads(results_file.read_text())


def test_the_bench_measures_the_procfile_worker(tmp_path):
    stdout, report = run_bench(
        tmp_path,
        "--columns",
        "app",
        "--rows",
        "noop,tag-sqlite,scheduled",
        "--scale",
        "0.02",
        "--cap",
        "30",
        timeout=180,
    )
    assert "app worker (Procfile)" in stdout.splitlines()[0]
    assert report["columns"]["app"]["command"] == procfile()["worker"]
    results = report["results"]
    assert results["noop"]["app"] > 0
    assert results["tag_sqlite"]["app"] > 0  # the app's own job, on the app's models
    for line in ("scheduled_lateness", "retry_lateness"):
        lateness = results[line]["app"]
        assert -0.05 < lateness["min"] <= lateness["max"] < 30, line  # never early


def test_the_bench_measures_the_recurring_jobs_on_both_databases(tmp_path):
    _, report = run_bench(tmp_path, "--rows", "recurring", "--scale", "0.005", timeout=300)
    results = report["results"]
    both = {"sqlite", "postgres"}
    # A minute's signups looked up at once: the mark, the lookup, the mark again.
    assert results["requeue_round_trips"] == dict.fromkeys(both, 3)
    assert results["stats_round_trips"] == dict.fromkeys(both, 1)  # the figures, stored
    assert all(results["requeue_ms"][database] > 0 for database in both)


def test_the_bench_loads_the_procfile_web_process_and_its_worker(tmp_path):
    _, report = run_bench(
        tmp_path,
        "--rows",
        "web",
        "--web-databases",
        "sqlite",
        "--clients",
        "2",
        "--scale",
        "0.05",
        timeout=300,
    )
    log = (tmp_path / "logs" / "web-sqlite-1x1.log").read_text()
    assert f"$ {procfile()['web']}\n" in log
    assert "POST /posts/new 302" in log  # gunicorn's access log: posts were written
    results = {line: values["sqlite-1x1"] for line, values in report["results"].items()}
    assert results["web_errors"] == 0
    rates = ("web_create_rate", "web_index_rate", "web_post_rate", "web_alone", "web_alone_made")
    for line in (*rates, "web_hello"):
        assert results[line] > 0, line
    assert results["web_create_app"] > 0  # read from the Server-Timing header
    assert results["web_tagged_after"] is not None  # the worker tagged every post
    # The machine's CPU by kind of process: the worker tagged, the users were simulated.
    assert results["web_machine_worker"] > 0 and results["web_machine_load"] > 0
