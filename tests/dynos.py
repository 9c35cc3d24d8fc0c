"""Run the Procfile's processes the way a platform runs them, for the tests that boot the app.

A platform reads a command line from the Procfile, runs it with ``sh -c`` in an environment
of config variables, and stops it with SIGTERM to every process it started (then SIGKILL,
30 s later on Heroku).
"""

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(line.split(": ", 1) for line in lines if line and not line.startswith("#"))


def wait_for(condition, timeout: float, what: str):
    """Poll ``condition`` until it returns something true, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = condition()
            if result:
                return result
        except OSError:
            pass
        time.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


def platform_env(**config) -> dict:
    """The environment of a dyno: the app's config variables and little else (no FLASK_APP,
    no APP_ENV unless given), with the virtualenv's commands on the PATH, as the buildpack
    puts them."""
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        **{key: str(value) for key, value in config.items()},
    }


class Dyno:
    """One process type of the Procfile, running as ``sh -c <its command line>``.

    It gets a process group of its own, so that ``stop()`` signals every process it started
    (gunicorn's workers, the worker pool's children) as a platform does. Its output goes to a
    file, where a test can look for a log line at any time.
    """

    def __init__(self, name: str, env: dict, log_dir: Path):
        self.name = name
        self.command = procfile()[name]
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "Dyno":
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(
                ["sh", "-c", self.command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def output(self) -> str:
        return self.log_path.read_text()

    def stop(self) -> None:
        """SIGTERM to every process of this dyno."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)

    def kill(self) -> None:
        """What the platform does when the grace period is over: SIGKILL to what is left."""
        kill_tree(self.process.pid)
        self.process.wait()


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> None:
    """Signal a process and all its descendants, whatever their process groups (RQ gives each
    work-horse its own), as a platform does when it stops a dyno or the kernel kills it."""
    family = freeze_tree(pid)
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(sig)
    for process in family:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.resume()  # a stopped process gets its signal only once it runs again


def freeze_tree(pid: int) -> list[psutil.Process]:
    """Stop (SIGSTOP) a process and its descendants, parents first, each before its children
    are listed: a stopped process forks no more, so none can be forked between the listing and
    the signal and be left behind, running jobs. The stopped processes, in that order."""
    family, pending = [], [pid]
    while pending:
        try:
            process = psutil.Process(pending.pop(0))
            process.suspend()
            deadline = time.monotonic() + 5
            # Stopped once any fork it was in has completed, so its children are all listed.
            while process.status() not in (psutil.STATUS_STOPPED, psutil.STATUS_ZOMBIE):
                if time.monotonic() > deadline:
                    break
                time.sleep(0.001)
            pending += [child.pid for child in process.children()]
            family.append(process)
        except psutil.NoSuchProcess:
            continue
    return family
