"""The docs as tests: every ```console block of the README and of docs/lessons/ is replayed
against a live app, started the way ``make run`` starts it, and each step must print what the
docs show. The convention is in tests/console_docs.py (for writers: docs/lessons/README.md).

The chapters of the course are replayed in order, on one copy of the checkout, in one shell,
with one app that only a chapter's own ``make run`` restarts: a learner who has done 000 sees
in 001 what 001 shows. The README is replayed on a copy of its own.

They replay ``make run``, which runs on its SQLite file whatever the suite's database: a run
on PostgreSQL (``TEST_DATABASE_URL``) leaves them to the SQLite run, as CI does.
"""

import os
import re
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

README = ROOT / "README.md"
LESSONS = ROOT / "docs" / "lessons"
# The chapters, in the order a learner takes them: 000-..., 001-..., by file name.
CHAPTERS = sorted(LESSONS.glob("[0-9][0-9][0-9]-*.md"))

# The smaller counts and delays the chapters use for their long steps (``--count
# ${JOBS:-500}``): each chapter states the real default in the command itself.
DOCS_TEST_VARIABLES = {
    "JOBS": "20",
    "DELAY": "0.2",
    "CONCURRENCY": "2",
    "REMINDER_DELAY": "60",
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


class Replay:
    """A learner at the keyboard: one copy of the checkout, one shell, one ``make run``."""

    def __init__(self, tmp_path: Path):
        self.tmp_path = tmp_path
        checkout = copy_checkout(tmp_path / "checkout")
        self.env = learner_env(checkout, free_port())
        self.shell = Shell(checkout, self.env)
        self.app = LiveApp(checkout, {**self.env, **APP_VARIABLES}, tmp_path / "make-run.log")
        self.ci_script = (ROOT / ".ci" / "run").read_text().splitlines()

    def doc(self, path: Path) -> None:
        """Every step of ``path``, in order; then its background steps must still run, and
        are stopped, as the learner stops them before the next chapter."""
        name = path.relative_to(ROOT).as_posix()
        for step in console_steps(path.read_text()):
            self.step(step, f"{name}:{step.line}: $ {step.command}")
        stopped = self.shell.still_running()
        assert not stopped, f"{name}: stopped early: {[step.command for step in stopped]}"
        self.shell.stop_background()

    def step(self, step, where: str) -> None:
        if run := MAKE_RUN.match(step.code):
            assert not step.expected, f"{where}: show no output under make run"
            self.app.start(make_run_variables(run[1], self.env), run[2].split())
            return
        if CI_STEP.match(step.code):
            assert step.code in self.ci_script, f"{where}: not run by .ci/run"
            return
        if step.keeps_running:
            self.shell.start(step, self.tmp_path / f"background-{step.line}.log")
            return
        output, status = self.shell.run(step.command, STEP_TIMEOUT)
        assert status == step.exit_status, f"{where}\nexited with {status}:\n{output}"
        if step.output:
            assert matches(step.output, output), (
                f"{where}\nexpected:\n" + "\n".join(step.output) + f"\n\ngot:\n{output}"
            )

    def close(self) -> None:
        self.shell.close()
        self.app.stop()


@pytest.fixture
def replay(tmp_path):
    replay = Replay(tmp_path)
    yield replay
    replay.close()


replayed_on_sqlite = pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="replayed on SQLite")


@pytest.mark.docs
@replayed_on_sqlite
def test_the_chapters_replay_in_order(replay):
    assert CHAPTERS, "no chapter found in docs/lessons/"
    for chapter in CHAPTERS:
        replay.doc(chapter)


@pytest.mark.docs
@replayed_on_sqlite
def test_the_readme_replays(replay):
    replay.doc(README)


def layout_paths(readme: str) -> list[list[str]]:
    """What the README's "Layout" block names: the entries (a top-level name at the start of a
    line, the names under a folder indented below it, before the description column), and
    the Python files its descriptions mention. Each item lists where it may be, for an entry
    one path, for a mention the folders it may be relative to."""
    block = readme.split("## Layout", 1)[1].split("```", 2)[1]
    lines = [line for line in block.splitlines()[1:] if line.strip()]
    column = re.match(r"\S+\s+", lines[0]).end()  # where the descriptions start
    found, folder, entries = [], "", []
    for line in lines:
        # A name longer than the column pushes its description along: it ends at two spaces.
        end = column
        if len(line) > column and not line[column - 1].isspace():
            end = re.compile(r"\s{2,}|$").search(line, column).start()
        if names := line[:end].split():
            if not line.startswith(" "):
                folder = names[0] if names[0].endswith("/") else ""
                entries = names
            else:
                entries = [folder + name for name in names]
            found += [[entry] for entry in entries]
        bases = [entry for entry in entries if entry.endswith("/")] + [folder, ""]
        for mention in re.findall(r"[\w/]+\.py\b", line[end:]):
            found.append([base + mention for base in bases])
    return found


def test_every_path_the_readme_layout_names_exists():
    found = layout_paths(README.read_text())
    assert len(found) > 40  # the parse found the block
    missing = [places[0] for places in found if not any((ROOT / p).exists() for p in places)]
    assert not missing, f"README.md's Layout names paths that do not exist: {missing}"
