"""Replaying the ```console blocks of the docs, step by step, as a learner types them.

The convention (docs/lessons/README.md explains it to writers):

- A ```console block is replayed; any other block (```text, ```python, a bare ```) is not.
- ``$ `` starts a step; a line ending in ``\\`` continues it. The lines up to the next step
  are what the step prints (stdout and stderr together, as a terminal shows them).
- In shown output, ``<id>``, ``<time>``, ``<n>`` (a number) and ``<url>`` stand for what
  changes from run to run, ``...`` inside a line for any text, and a line of just ``...``
  for any number of lines. A step that shows nothing may print anything, but like every
  step it must exit with status 0.
- A step expected to fail shows ``[exit N]`` as its last line: it must exit with status N.
- ``[VAR=value ...] make run`` (re)starts the app with those variables, as ``make run``
  does (``bin/run``: its own Redis, then honcho). Show no output under it.
- A step whose comment says ``keeps running`` is started in the background, in a session of
  its own; it must still be running when its chapter ends, where it is stopped (SIGTERM) as
  the learner stops it with Ctrl+C.
- ``make test`` and ``make lint`` steps are what CI runs: they must appear, as written, in
  ``.ci/run`` (the docs test does not run the suite inside the suite).

The chapters share one copy of the checkout (so a learner's ``instance/`` is never touched),
one shell whose variables carry from step to step and from chapter to chapter, and one live
app, restarted by each ``make run`` step; the README gets a copy, a shell and an app of its
own (tests/test_docs.py).
"""

import contextlib
import os
import queue
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent

PLACEHOLDERS = {
    "<id>": r"[\w.:-]+",
    "<time>": r"[\d:T .+-]+",
    "<n>": r"-?[\d,]+(?:\.\d+)?",
    "<url>": r"\S+",
}
MAKE_RUN = re.compile(r"^((?:\w+=\S*\s+)*)make run\b(.*)$")
CI_STEP = re.compile(r"^((?:\w+=\S*\s+)*)make (test|lint)$")


@dataclass
class Step:
    command: str
    expected: list[str]
    line: int  # where the step is in its file, for error messages

    @property
    def code(self) -> str:
        """The command without its trailing comment (for the special steps)."""
        return self.command.partition(" #")[0].strip()

    @property
    def exit_status(self) -> int:
        """0, or the N of an ``[exit N]`` last line."""
        last = self.expected[-1].strip() if self.expected else ""
        found = re.fullmatch(r"\[exit (\d+)\]", last)
        return int(found[1]) if found else 0

    @property
    def output(self) -> list[str]:
        """The shown output, without an ``[exit N]`` line."""
        return self.expected[:-1] if self.exit_status else self.expected

    @property
    def keeps_running(self) -> bool:
        return "keeps running" in self.command.partition(" #")[2]


def console_steps(text: str) -> list[Step]:
    """The steps of every ```console block of ``text``, in order."""
    steps: list[Step] = []
    in_block = False
    indent = 0  # a block in a list item is indented like its fence
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not in_block:
            in_block = stripped == "```console"
            indent = len(line) - len(line.lstrip())
            continue
        line = line[indent:] if line[:indent].isspace() else line
        if stripped.startswith("```"):
            in_block = False
        elif stripped.startswith("$ "):
            steps.append(Step(stripped[2:], [], number))
        elif steps and steps[-1].command.endswith("\\") and not steps[-1].expected:
            steps[-1].command = steps[-1].command[:-1].rstrip() + " " + stripped
        elif steps:
            steps[-1].expected.append(line.rstrip())
        elif stripped:
            raise ValueError(f"line {number}: output before the first $ step")
    return steps


def output_pattern(expected: list[str]) -> re.Pattern:
    parts = []
    for line in expected:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
            continue
        # Columns: a placeholder is narrower or wider than what it stands for, so any run of
        # spaces matches any other.
        words = []
        for word in line.split():
            regex = re.escape(word).replace(re.escape("..."), ".*?")
            for placeholder, pattern in PLACEHOLDERS.items():
                regex = regex.replace(re.escape(placeholder), pattern)
            words.append(regex)
        indent = r"[ \t]*" if line[:1].isspace() else ""
        parts.append(indent + r"[ \t]+".join(words) + r"[ \t]*\n")
    return re.compile("".join(parts))


def matches(expected: list[str], output: str) -> bool:
    lines = [line.rstrip() for line in output.splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    while expected and not expected[-1].strip():
        expected = expected[:-1]
    text = "".join(line + "\n" for line in lines)
    return output_pattern(expected).fullmatch(text) is not None


def copy_checkout(destination: Path) -> Path:
    """The files of this checkout (committed or not, minus the ignored ones), and a link to
    its virtualenv."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "-z"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for name in filter(None, (item.decode() for item in listed)):
        source = ROOT / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
            target.chmod(source.stat().st_mode)
    (destination / ".venv").symlink_to(VENV_BIN.parent)
    return destination


class Shell:
    """One bash for a whole chapter: ``export`` and ``source`` carry over, like a terminal."""

    def __init__(self, cwd: Path, env: dict):
        self.process = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.background: list[tuple[Step, str]] = []

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line)

    def run(self, command: str, timeout: float) -> tuple[str, int]:
        """Run ``command`` (its stdin empty); return what it printed and its exit status."""
        marker = f"--end of step {uuid.uuid4().hex}--"
        self.process.stdin.write(f'{{\n{command}\n}} </dev/null 2>&1\necho "{marker} $?"\n')
        self.process.stdin.flush()
        output = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                raise AssertionError(
                    f"step still running after {timeout:.0f} s: {command}\n{''.join(output)}"
                ) from None
            if line.startswith(marker):
                return "".join(output), int(line.split()[-1])
            output.append(line)

    def start(self, step: Step, log: Path) -> None:
        """Start a step that keeps running, in the background, its output into ``log``: in
        a session of its own, so that ``stop_background`` stops it with its children."""
        command = f"setsid bash -c {shlex.quote(step.command)}"
        output, _ = self.run(f"{command} >{shlex.quote(str(log))} 2>&1 </dev/null & echo $!", 10)
        self.background.append((step, output.strip()))

    def still_running(self) -> list[Step]:
        return [
            step
            for step, pid in self.background
            if self.run(f"kill -0 {pid} 2>/dev/null", 10)[1] != 0
        ]

    def stop_background(self, patience: float = 30) -> None:
        """Stop the steps that keep running, as Ctrl+C in their terminals would: SIGTERM to
        each one's process group, then SIGKILL to what is left after ``patience`` seconds."""
        groups = [int(pid) for _, pid in self.background]
        self.background = []
        for group in groups:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + patience
        for group in groups:
            while alive(group) and time.monotonic() < deadline:
                time.sleep(0.2)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)

    def close(self) -> None:
        self.stop_background(patience=5)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=10)
        self.process.stdin.close()
        self.process.stdout.close()


def alive(group: int) -> bool:
    """Whether any process of the process group ``group`` is left."""
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


class LiveApp:
    """The app as ``make run`` runs it (``bin/run``), in the chapter's copy of the checkout."""

    def __init__(self, cwd: Path, env: dict, log: Path):
        self.cwd = cwd
        self.env = env
        self.log = log
        self.process: subprocess.Popen | None = None
        self.log_start = 0  # where the current run's output begins in the log

    def start(self, variables: dict[str, str], args: list[str]) -> None:
        self.stop()
        self.log_start = len(self.output()) if self.log.exists() else 0
        with self.log.open("a") as log:
            self.process = subprocess.Popen(
                [str(VENV_BIN / "python"), "bin/run", *args],
                cwd=self.cwd,
                env={**self.env, **variables},
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.wait_until_ready(int(variables.get("WORKER_CONCURRENCY", "1")))

    def wait_until_ready(self, workers: int, timeout: float = 90) -> None:
        """Until the web answers /healthz, the worker pool has registered its workers and
        the clock has started."""
        from redis import Redis

        deadline = time.monotonic() + timeout
        url_file = self.cwd / "instance" / "redis_url"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"make run stopped:\n{self.output()[-3000:]}")
            with contextlib.suppress(OSError, ValueError):
                health = f"http://127.0.0.1:{self.env['PORT']}/healthz"
                with urllib.request.urlopen(health, timeout=2) as response:
                    web_ok = response.status == 200
                url = self.env.get("REDIS_URL") or url_file.read_text()
                with Redis.from_url(url) as redis:
                    ready = (
                        web_ok
                        and redis.scard("rq:workers") >= workers
                        and "CronScheduler" in self.output()[self.log_start :]
                    )
                if ready:
                    return
            time.sleep(0.3)
        raise AssertionError(f"make run not ready in {timeout} s:\n{self.output()[-3000:]}")

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # as Ctrl+C: honcho stops the app, then bin/run stops Redis
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def make_run_variables(prefix: str, shell_env: dict) -> dict[str, str]:
    """``A=1 B=${B:-2}`` before ``make run``, with ``${NAME:-default}`` expanded."""

    def expand(value: str) -> str:
        return re.sub(r"\$\{(\w+):-([^}]*)\}", lambda m: shell_env.get(m[1]) or m[2], value)

    words = (word.partition("=") for word in shlex.split(prefix))
    return {name: expand(value) for name, _, value in words}
