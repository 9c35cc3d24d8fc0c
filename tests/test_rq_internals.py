"""The one module below RQ's public API (``blog.rq_internals``): that it is the only one, which
RQ it was written against, and what it relies on RQ to do.

Upgrading RQ: run this file first. The version test says what to read; the others fail where
RQ changed what the seam relies on.
"""

import ast
import importlib
import inspect
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import rq
from rq.job import JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.worker import SimpleWorker, Worker

from blog import rq_internals
from blog.queues import Queue
from devtools.redis_round_trips import counting_round_trips
from tests import jobs
from workers.worker import ThreadWorker

ROOT = Path(__file__).resolve().parent.parent
SEAM = "blog.rq_internals"
APP_FILES = sorted(
    [ROOT / "app.py", *(ROOT / "blog").rglob("*.py"), *(ROOT / "workers").rglob("*.py")]
)

# RQ's documented modules. The others (rq.scripts, rq.utils, rq.executions, rq.defaults,
# rq.intermediate_queue, rq.job_lifecycle, rq.worker_registration, rq.scheduler ...) are its
# internals.
PUBLIC_MODULES = {
    "rq",
    "rq.job",
    "rq.queue",
    "rq.registry",
    "rq.worker",
    "rq.command",
    "rq.suspension",
    "rq.exceptions",
    "rq.serializers",
    "rq.cron",
    "rq.cli",
    "rq.timeouts",
    "rq.results",
    "rq.group",
    "rq.repeat",
    "rq.rate_limit",
    "rq.decorators",
    "rq.retry",
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def rq_private_names() -> set[str]:
    """Every ``_name`` RQ defines: functions, methods, classes, attributes."""
    names = set()
    for path in Path(rq.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            name = getattr(node, "name", None) or getattr(node, "attr", None)
            if isinstance(name, str) and name.startswith("_") and not name.startswith("__"):
                names.add(name)
    return names


def own_names(tree: ast.AST) -> set[str]:
    """The names a module defines itself: its functions and methods, and ``self.<name>``."""
    names = {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.ClassDef)}
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.ctx, ast.Store)
            and isinstance(node.value, ast.Name)
            and node.value.id == "self"
        ):
            names.add(node.attr)
    return names


def below_the_public_api(path: Path, private: set[str]) -> list[str]:
    found = []
    tree = ast.parse(path.read_text())
    private = private - own_names(tree)
    for node in ast.walk(tree):
        where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "rq":
            if node.module not in PUBLIC_MODULES:
                found.append(f"{where}: imports RQ's internal module {node.module}")
            found += [f"{where}: imports {a.name}" for a in node.names if a.name.startswith("_")]
        elif isinstance(node, ast.Import):
            found += [
                f"{where}: imports RQ's internal module {a.name}"
                for a in node.names
                if a.name.split(".")[0] == "rq" and a.name not in PUBLIC_MODULES
            ]
        elif (
            isinstance(node, ast.Attribute)
            and node.attr in private
            and not (isinstance(node.value, ast.Name) and node.value.id in ("os", "sys"))
        ):
            found.append(f"{where}: uses RQ's private name {node.attr}")
        elif (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("rq:")
        ):
            found.append(f"{where}: spells one of RQ's keys, {node.value!r}")
    return found


def test_the_seam_was_written_against_the_installed_rq():
    assert rq.__version__ == rq_internals.RQ_WRITTEN_AGAINST, (
        f"RQ is {rq.__version__}, and blog/rq_internals.py was written against "
        f"{rq_internals.RQ_WRITTEN_AGAINST}: read it against RQ's changes to the modules it "
        "names, make the rest of this file pass, then update RQ_WRITTEN_AGAINST"
    )


def test_no_other_module_goes_below_rqs_public_api():
    private = rq_private_names()
    found = [
        problem
        for path in APP_FILES
        if module_name(path) != SEAM
        for problem in below_the_public_api(path, private)
    ]
    assert found == [], "\n".join(found)


def test_no_other_module_overrides_an_rq_method():
    """Subclassing RQ's classes and setting their documented class attributes (queue_class,
    death_penalty_class ...) is fine; redefining one of their methods is for the seam."""
    found = []
    for path in APP_FILES:
        if path.stem == "__main__":
            continue
        module = importlib.import_module(module_name(path))
        for cls in vars(module).values():
            if not inspect.isclass(cls) or cls.__module__ != module.__name__:
                continue
            rq_classes = [k for k in cls.__mro__ if k.__module__.split(".")[0] == "rq"]
            app_classes = [k for k in cls.__mro__ if k not in rq_classes and k is not object]
            for k in app_classes:
                if k.__module__ == SEAM:
                    continue
                for name, value in vars(k).items():
                    method = inspect.isfunction(value) or isinstance(
                        value, property | staticmethod | classmethod
                    )
                    if name.startswith("__") or not method:
                        continue
                    if any(name in vars(base) for base in rq_classes):
                        found.append(f"{k.__module__}.{k.__qualname__}.{name} overrides RQ's")
    assert sorted(set(found)) == []


def test_the_guard_sees_a_module_reaching_below_the_api(tmp_path):
    sample = ROOT / "blog" / "_guard_sample.py"
    sample.write_text(
        "from rq.scripts import release_lock\n"
        "def f(worker):\n"
        "    worker._stop_requested = True\n"
        "    return 'rq:worker:' + worker.name\n"
    )
    try:
        found = below_the_public_api(sample, rq_private_names())
    finally:
        sample.unlink()
    assert len(found) == 3, found


# --- What the seam relies on RQ to do -------------------------------------------------------


@pytest.mark.integration
def test_a_scheduled_job_keeps_its_exact_due_time(app, live_redis):
    queue = Queue("default", connection=live_redis)
    due = datetime.now(UTC) + timedelta(seconds=30, microseconds=250_000)
    job = queue.enqueue_at(due, jobs.record_start, "k")
    score = live_redis.zscore(ScheduledJobRegistry(queue=queue).key, job.id)
    assert score == pytest.approx(due.timestamp(), abs=1e-6)


@pytest.mark.integration
def test_the_running_jobs_and_their_workers_are_read_in_two_round_trips(app, live_redis):
    queue = Queue("default", connection=live_redis)
    job = queue.enqueue(jobs.record_start, "k")
    worker = SimpleWorker([queue], name="seam-test.1", connection=live_redis)
    worker.register_birth()
    job.prepare_for_execution(worker.name, live_redis.pipeline())
    execution = worker.prepare_execution(job)
    assert execution.composite_key in [
        e.decode() for e in live_redis.zrange(StartedJobRegistry(queue=queue).key, 0, -1)
    ]
    assert rq_internals.started_entries(live_redis, ["urgent", "default"]) == [
        ("default", execution.composite_key, job.id, "seam-test.1")
    ]
    assert rq_internals.alive_workers(live_redis, ["seam-test.1", "gone.1"]) == {"seam-test.1"}
    worker.register_death()
    assert rq_internals.alive_workers(live_redis, ["seam-test.1"]) == set()


@pytest.mark.integration
def test_an_abandoned_job_is_failed_as_rqs_clean_up_fails_it(app, live_redis):
    queue = Queue("default", connection=live_redis)
    job = queue.enqueue(jobs.record_start, "k")
    worker = SimpleWorker([queue], name="seam-test.2", connection=live_redis)
    execution = worker.prepare_execution(job)
    assert rq_internals.take_started_entry(live_redis, "default", execution.composite_key)
    assert not rq_internals.take_started_entry(live_redis, "default", execution.composite_key)
    with live_redis.pipeline() as pipeline:
        rq_internals.fail_abandoned(job, "Abandoned: a test.", pipeline, worker.name)
        rq_internals.delete_execution(live_redis, job, execution.composite_key, pipeline)
        pipeline.execute()
    assert job.get_status(refresh=True) == JobStatus.FAILED
    assert job.id in queue.failed_job_registry
    assert job.latest_result().exc_string == "Abandoned: a test."
    assert not live_redis.exists(execution.key)


@pytest.mark.integration
def test_a_job_parked_by_a_single_queue_worker_can_be_put_back(app, live_redis):
    queue = Queue("urgent", connection=live_redis)
    job = queue.enqueue(jobs.record_start, "k")
    # What a worker serving only this queue does as it takes the job (then dies).
    taken, _ = Queue.dequeue_any([queue], None, connection=live_redis)
    assert taken.id == job.id and queue.count == 0
    assert rq_internals.unregistered_job_ids(live_redis, [queue]) == {("urgent", job.id)}
    assert rq_internals.put_back_unregistered(live_redis, queue, job.id)
    assert not rq_internals.put_back_unregistered(live_redis, queue, job.id)
    assert queue.job_ids == [job.id]
    assert rq_internals.unregistered_job_ids(live_redis, [queue]) == set()


@pytest.mark.integration
def test_due_jobs_move_to_their_queue_and_the_scheduler_lock_takes_turns(app, live_redis):
    queue = Queue("default", connection=live_redis)
    job = queue.enqueue_in(timedelta(seconds=60), jobs.record_start, "k")
    rq_internals.enqueue_due_jobs(live_redis, queue, [job.id, "gone"])
    assert queue.job_ids == [job.id]
    assert ScheduledJobRegistry(queue=queue).get_job_ids() == []
    lock = rq_internals.register_lock_script(live_redis)
    key = rq_internals.scheduler_lock_key("default")
    assert lock(keys=[key], args=["one", 5]) != rq_internals.LOCK_TAKEN
    assert lock(keys=[key], args=["two", 5]) == rq_internals.LOCK_TAKEN
    rq_internals.release_scheduler_lock(live_redis, "default", "one")
    assert lock(keys=[key], args=["two", 5]) != rq_internals.LOCK_TAKEN


@pytest.mark.integration
def test_a_thread_worker_stops_when_asked_without_a_signal(app, live_redis):
    worker = ThreadWorker(["default"], name="seam-test.3", connection=live_redis, heartbeat=0.5)
    started = time.monotonic()
    thread = threading.Thread(target=worker.run)
    thread.start()
    time.sleep(0.5)
    rq_internals.stop_taking_jobs(worker)
    thread.join(timeout=5)
    assert not thread.is_alive() and time.monotonic() - started < 3
    assert worker.name not in {w.name for w in Worker.all(connection=live_redis)}


def round_trips_per_job(worker_class, connection, **options) -> float:
    """Redis round trips a worker makes per no-op job, over a burst of 10 and one of 30."""
    counts = []
    for jobs_count in (10, 30):
        queue = Queue("default", connection=connection)
        queue.enqueue_many([Queue.prepare_data(jobs.noop) for _ in range(jobs_count)])
        worker = worker_class(["default"], connection=connection, **options)
        with counting_round_trips() as trips:
            worker.work(burst=True)
        counts.append(trips.count)
    return (counts[1] - counts[0]) / 20


@pytest.mark.integration
def test_a_thread_worker_makes_at_most_ten_round_trips_a_job_where_rqs_makes_more(app, live_redis):
    ours = round_trips_per_job(ThreadWorker, live_redis, heartbeat=5)
    rqs = round_trips_per_job(SimpleWorker, live_redis)
    assert ours <= 10 < rqs, (ours, rqs)
