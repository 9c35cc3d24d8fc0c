"""The workers under test, run as a platform runs a Procfile line, and their processes.

Each column of the table is one command line, run with ``sh -c`` from the repository root in
an environment of config variables. The bench knows nothing else about the app's worker: its
column is whatever the Procfile's ``worker:`` line says today, with ``WORKER_CONCURRENCY`` set
when a row asks for a number of concurrent jobs.
"""

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from blog.queues import QUEUE_NAMES

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
QUEUES = " ".join(QUEUE_NAMES)


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit(f"no {name}: line in the Procfile")


@dataclass(frozen=True)
class Column:
    """One worker setup: a name for the command line, a title for the table, and whether it
    runs one job at a time whatever the concurrency asked for."""

    name: str
    title: str
    command_line: str
    single: bool = False

    # Not str.format: a Procfile line has braces of its own (${WORKER_CONCURRENCY:-1}).
    def command(self, concurrency: int) -> str:
        return self.command_line.replace("{concurrency}", str(concurrency))

    def title_for(self, concurrency: int) -> str:
        return self.title.replace("{concurrency}", str(concurrency))


def columns() -> dict[str, Column]:
    # The stock workers serve the app's queues and run RQ's scheduler, as a production worker
    # must (retries and enqueue_in/enqueue_at need one); the pool runs it in every member.
    stock = f'--url "$REDIS_URL" {QUEUES}'
    return {
        column.name: column
        for column in (
            Column("app", "app worker (Procfile)", procfile_command("worker")),
            Column("rq", "rq worker", f"exec rq worker --with-scheduler {stock}", single=True),
            Column(
                "simple",
                "rq worker SimpleWorker",
                f"exec rq worker --with-scheduler -w rq.worker.SimpleWorker {stock}",
                single=True,
            ),
            Column(
                "pool",
                "rq worker-pool -n {concurrency}",
                "exec rq worker-pool -n {concurrency} " + stock,
            ),
        )
    }


# Config variables given with ``--set NAME=VALUE``, for every worker.
EXTRA_CONFIG: dict[str, str] = {}


def worker_env(redis_url: str, database_url: str, **config) -> dict[str, str]:
    """A dyno's environment: config variables, the virtualenv's commands on the PATH, the
    repository on PYTHONPATH (for ``bench.jobs``), and nothing from the caller's shell."""
    return {
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", "/tmp"),
        "LANG": "C.UTF-8",
        "PYTHONUNBUFFERED": "1",
        "PYTHONPATH": str(ROOT),
        "APP_ENV": "production",
        "SECRET_KEY": "bench-only-not-a-secret",
        "APP_URL": "https://bench.invalid",
        "REDIS_URL": redis_url,
        "DATABASE_URL": database_url,
        "TAGGER_LATENCY": "0",
        "TAGGER_FAILURE_RATE": "0",
        **EXTRA_CONFIG,
        **{key: str(value) for key, value in config.items()},
    }


class WorkerExited(RuntimeError):
    """The worker under test stopped on its own."""


class WorkerProcess:
    """One run of a column's command, and every process it starts.

    Its processes are found as a tree (children, recursively), not as a process group: RQ puts
    each work-horse in a process group of its own.
    """

    def __init__(self, command: str, env: dict, log_path: Path):
        self.command = command
        self.env = env
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self._seen: dict[int, psutil.Process] = {}

    def start(self) -> "WorkerProcess":
        with self.log_path.open("a") as log:
            log.write(f"$ {self.command}\n")
            log.flush()
            self.process = subprocess.Popen(
                ["sh", "-c", self.command],
                cwd=ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            tail = "".join(self.log_path.read_text().splitlines(keepends=True)[-15:])
            raise WorkerExited(
                f"the worker exited with status {self.process.returncode}; "
                f"the end of {self.log_path}:\n{tail}"
            )

    def tree(self) -> list[psutil.Process]:
        """The worker's live processes: the one started and its descendants, and those seen
        here before and theirs (a process whose parent died is no one's descendant)."""
        everyone = {p.pid: p for p in psutil.process_iter(["ppid", "status"])}
        children: dict[int, list[psutil.Process]] = {}
        for process in everyone.values():
            children.setdefault(process.info["ppid"], []).append(process)
        roots = [pid for pid, process in self._seen.items() if process.is_running()]
        todo = [everyone[pid] for pid in [self.process.pid, *roots] if pid in everyone]
        found: dict[int, psutil.Process] = {}
        while todo:
            process = todo.pop()
            if process.pid not in found:
                if process.info["status"] != psutil.STATUS_ZOMBIE:
                    found[process.pid] = process
                todo.extend(children.get(process.pid, []))
        self._seen = dict(found)
        return list(found.values())

    def pss(self) -> tuple[int, int]:
        """Total proportional set size of all the worker's processes, in bytes, and how many."""
        total = count = 0
        for process in self.tree():
            with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess):
                total += process.memory_full_info().pss
                count += 1
        return total, count

    def kill(self) -> None:
        """SIGKILL every process, as a platform does when a dyno crashes or runs out of memory.

        Each process is stopped first (SIGSTOP), until no new one appears, so that none can
        fork a child between the listing and the kill.
        """
        stopped: dict[int, psutil.Process] = {}
        while new := [p for p in self.tree() if p.pid not in stopped]:
            for process in new:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.send_signal(signal.SIGSTOP)
                stopped[process.pid] = process
        for process in stopped.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signal.SIGKILL)
        if self.process.poll() is None:
            self.process.wait()


class MemorySampler:
    """Sample a worker's total PSS in a thread, every ``interval`` seconds, keeping the peak."""

    def __init__(self, worker: WorkerProcess, interval: float = 0.25):
        self.worker = worker
        self.interval = interval
        self.peak = 0
        self.peak_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "MemorySampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            total, count = self.worker.pss()
            if total > self.peak:
                self.peak, self.peak_processes = total, count
            self.samples += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - started)))
