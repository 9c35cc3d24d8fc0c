"""How long an urgent job waits behind a backlog on ``default``: with the Procfile's worker
alone, and with a worker of its own for ``urgent``.

    .venv/bin/python bench/priorities.py                          # 2 workers, 2 s jobs, 5 rounds
    .venv/bin/python bench/priorities.py --concurrency 4 --delay 5

RQ serves its queues in strict order, so an urgent job goes first, but only once a worker is
free: with every worker busy on a long job, it waits for the first of them to finish. Sidekiq
answers that with weights; the RQ way is a worker that serves ``urgent`` alone. This starts a
Redis of its own, runs the Procfile's worker (``WORKER_CONCURRENCY`` set) and, in the second
half, ``python -m workers --queues urgent`` beside it; it fills ``default`` with demo jobs,
then, each round once every worker is busy, enqueues one urgent job and measures from its
enqueue to its start (RQ's ``enqueued_at`` and ``started_at``).
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rq import Queue, Worker
from rq.job import Job

from devtools.embedded_redis import EmbeddedRedis
from workers.demo import demo

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
URGENT_WORKER = [sys.executable, "-m", "workers", "--queues", "urgent"]


def procfile_command(name: str) -> str:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise SystemExit(f"no {name} process in the Procfile")


def wait_for(condition, what: str, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise SystemExit(f"timed out waiting for {what}")


def urgent_waits(env: dict, redis, args, dedicated: bool) -> list[float]:
    """Each round's wait of the urgent job, in seconds."""
    connection = redis.client()
    connection.flushdb()
    processes = [
        subprocess.Popen(
            ["sh", "-c", procfile_command("worker")],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    if dedicated:
        processes.append(
            subprocess.Popen(
                URGENT_WORKER,
                env={**env, "WORKER_CONCURRENCY": "1"},
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    default, urgent = (
        Queue("default", connection=connection),
        Queue("urgent", connection=connection),
    )
    expected = args.concurrency + dedicated
    try:
        wait_for(lambda: len(Worker.all(connection=connection)) >= expected, "the workers")
        waits = []
        for _ in range(args.rounds):
            for _ in range(args.concurrency * 3):
                default.enqueue(demo, args.delay, "backlog")
            wait_for(
                lambda: default.started_job_registry.count >= args.concurrency, "every worker busy"
            )
            job = urgent.enqueue(demo, 0, "urgent")
            wait_for(
                lambda job=job: Job.fetch(job.id, connection=connection).started_at,
                "the urgent job",
            )
            job.refresh()
            waits.append((job.started_at - job.enqueued_at).total_seconds())
            default.empty()
            wait_for(
                lambda: default.started_job_registry.count == 0,
                "the backlog to finish",
                timeout=args.delay * 3 + 30,
            )
        return waits
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=2, help="WORKER_CONCURRENCY")
    parser.add_argument("--delay", type=float, default=2.0, help="seconds per backlog job")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    redis = EmbeddedRedis().start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {
                **os.environ,
                "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
                "REDIS_URL": redis.url,
                "DATABASE_URL": f"sqlite:///{tmp}/bench.sqlite3",
                "WORKER_CONCURRENCY": str(args.concurrency),
            }
            print(
                f"{args.concurrency} worker(s) busy with {args.delay:g} s jobs on default; "
                f"one urgent job, {args.rounds} rounds"
            )
            for dedicated in (False, True):
                waits = urgent_waits(env, redis, args, dedicated)
                label = "with a worker for urgent" if dedicated else "Procfile worker alone"
                print(
                    f"{label:<26} urgent job waited: mean {statistics.mean(waits):.3f} s, "
                    f"max {max(waits):.3f} s"
                )
    finally:
        redis.stop()


if __name__ == "__main__":
    main()
