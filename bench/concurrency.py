"""How long N demo jobs of D seconds take with C workers: the Sidekiq lesson's arithmetic.

    .venv/bin/python bench/concurrency.py                      # 100 jobs x 1 s, 10 workers
    .venv/bin/python bench/concurrency.py --jobs 500 --delay 5 --concurrency 25

It starts a Redis of its own, enqueues the jobs with ``flask jobs demo``, runs the Procfile's
worker command with ``WORKER_CONCURRENCY`` set, and reports when the last job finished next to
the ideal ``jobs * delay / concurrency``. The ideal assumes the jobs only wait (sleep), as jobs
that call slow APIs mostly do; CPU-bound jobs are limited by the cores as well.
"""

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rq import Queue

from blog.embedded_redis import EmbeddedRedis

ROOT = Path(__file__).resolve().parent.parent


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit(f"no {name} process in the Procfile")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100)
    parser.add_argument("--delay", type=float, default=1.0)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()

    redis = EmbeddedRedis().start()
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
            "REDIS_URL": redis.url,
            "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
            "WORKER_CONCURRENCY": str(args.concurrency),
            "FLASK_APP": "app.py",
        }
        subprocess.run(
            [
                bin_dir / "flask",
                "jobs",
                "demo",
                "--count",
                str(args.jobs),
                "--delay",
                str(args.delay),
                "--message",
                "bench",
            ],
            env=env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        queue = Queue("default", connection=redis.client())
        started = time.monotonic()
        worker = subprocess.Popen(
            ["sh", "-c", procfile_command("worker")],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        first_start = None
        try:
            while queue.finished_job_registry.count < args.jobs:
                if first_start is None and queue.count < args.jobs:
                    first_start = time.monotonic()
                if worker.poll() is not None:
                    raise SystemExit("the worker exited early")
                time.sleep(0.1)
            finished = time.monotonic()
        finally:
            worker.terminate()
            worker.wait(timeout=60)
            redis.stop()

    ideal = args.jobs * args.delay / args.concurrency
    total = finished - started
    working = finished - (first_start or started)
    print(
        f"command: WORKER_CONCURRENCY={args.concurrency} {shlex.quote(procfile_command('worker'))}"
    )
    print(f"{args.jobs} jobs x {args.delay:g} s with {args.concurrency} workers")
    print(
        f"ideal {ideal:.1f} s; measured {working:.1f} s from the first job started "
        f"({total:.1f} s including worker start-up)"
    )


if __name__ == "__main__":
    main()
