"""A worker loads a job's function by its dotted name, in a fresh interpreter: every job module
must import on its own, before anything else of the app."""

import subprocess
import sys

import pytest

from tests.dynos import ROOT


@pytest.mark.parametrize(
    "module", ["workers.tagging", "workers.mailers", "workers.maintenance", "workers.demo"]
)
def test_a_job_module_imports_first_thing(module):
    result = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_workers_app_leaves_out_what_only_other_processes_use():
    # Alembic (for `flask db`) and Sentry's SDK (when SENTRY_DSN is unset) would cost every
    # worker process 14 MB.
    program = (
        "import sys, workers; workers.process_app();"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'alembic', 'sentry_sdk'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"
