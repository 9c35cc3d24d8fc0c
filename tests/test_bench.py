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
