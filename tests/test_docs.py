"""The docs as tests: every ```console block of the README and of docs/lessons/ is replayed
against a live app, started the way ``make run`` starts it, and each step must print what the
docs show. The convention is in tests/console_docs.py (for writers: docs/lessons/README.md).

They replay ``make run``, which runs on its SQLite file whatever the suite's database: a run
on PostgreSQL (``TEST_DATABASE_URL``) leaves them to the SQLite run, as CI does.
"""

import os
from pathlib import Path

import pytest

from devtools.embedded_redis import free_port
from tests.conftest import TEST_DATABASE_URL
from tests.console_docs import (
    CI_STEP,
    MAKE_RUN,
    ROOT,
    VENV_BIN,
    LiveApp,
    Shell,
    console_steps,
    copy_checkout,
    make_run_variables,
    matches,
)

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs" / "lessons").glob("*.md"))]

# The smaller counts and delays the chapters name for their long steps ("the docs test sets
# JOBS=40"). Each chapter states the variables it uses and their real defaults.
DOCS_TEST_VARIABLES = {
    "JOBS": "20",
    "DELAY": "0.2",
    "CONCURRENCY": "2",
}
# Quick retries and a quick tagger, so that no step waits long; one web process is plenty.
APP_VARIABLES = {"RETRY_BACKOFF_FACTOR": "0.05", "TAGGER_LATENCY": "0.2", "WEB_CONCURRENCY": "1"}
STEP_TIMEOUT = 180


def learner_env(checkout: Path, port: int) -> dict:
    """A terminal in the checkout with the virtualenv activated, and no test settings."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TEST_", "PYTEST", "REDIS", "DATABASE", "APP_", "FLASK_"))
    }
    env.update(
        PATH=f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
        VIRTUAL_ENV=str(VENV_BIN.parent),
        PYTHONPATH=str(checkout),  # this copy's code, not the checkout's it was installed from
        PYTHONUNBUFFERED="1",
        PORT=str(port),
        **DOCS_TEST_VARIABLES,
    )
    return env


@pytest.mark.docs
@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="replayed in the run on SQLite")
@pytest.mark.parametrize("doc", DOCS, ids=lambda path: path.relative_to(ROOT).as_posix())
def test_console_blocks_replay(doc, tmp_path):
    steps = console_steps(doc.read_text())
    checkout = copy_checkout(tmp_path / "checkout")
    env = learner_env(checkout, free_port())
    shell = Shell(checkout, env)
    app = LiveApp(checkout, {**env, **APP_VARIABLES}, tmp_path / "make-run.log")
    ci_script = (ROOT / ".ci" / "run").read_text()
    try:
        for step in steps:
            where = f"{doc.name}:{step.line}: $ {step.command}"
            if run := MAKE_RUN.match(step.code):
                assert not step.expected, f"{where}: show no output under make run"
                app.start(make_run_variables(run[1], env), run[2].split())
                continue
            if CI_STEP.match(step.code):
                assert step.code in ci_script.splitlines(), f"{where}: not run by .ci/run"
                continue
            if step.keeps_running:
                shell.start(step, tmp_path / f"background-{step.line}.log")
                continue
            output, status = shell.run(step.command, STEP_TIMEOUT)
            assert status == step.exit_status, f"{where}\nexited with {status}:\n{output}"
            if step.output:
                assert matches(step.output, output), (
                    f"{where}\nexpected:\n" + "\n".join(step.output) + f"\n\ngot:\n{output}"
                )
        stopped = shell.still_running()
        assert not stopped, f"{doc.name}: stopped early: {[s.command for s in stopped]}"
    finally:
        shell.close()
        app.stop()
