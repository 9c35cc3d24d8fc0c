"""The benchmark suite still runs against the Procfile's worker: tiny counts, one column."""

import json
import subprocess
import sys

import pytest

from tests.dynos import ROOT

pytestmark = pytest.mark.bench


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
    results = json.loads(results_file.read_text())["results"]
    assert results["noop"]["app"] > 0
    assert results["tag_sqlite"]["app"] > 0  # the app's own job, on the app's models
    for line in ("scheduled_lateness", "retry_lateness"):
        lateness = results[line]["app"]
        assert lateness["min"] <= lateness["max"] < 30, line
