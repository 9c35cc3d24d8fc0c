import ast
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy.exc import IntegrityError

from blog.extensions import db
from blog.models import Post
from blog.queues import (
    QUEUE_NAMES,
    UnsafeJobArgument,
    backoff,
    check_job_arguments,
    enqueue_after_commit,
    get_queue,
)
from tests import factories
from workers.demo import demo

ROOT = Path(__file__).resolve().parent.parent
ENQUEUE_METHODS = {"enqueue", "enqueue_call", "enqueue_in", "enqueue_at", "enqueue_many"}


def queued_ids(name="default") -> list[str]:
    return get_queue(name).job_ids


def test_the_job_reaches_redis_only_after_commit(app_ctx, ada):
    post = factories.post(ada)
    post.title = "changed"
    enqueue_after_commit(demo, 0, "after commit")
    assert queued_ids() == []
    db.session.commit()
    assert len(queued_ids()) == 1


def test_a_rollback_enqueues_nothing(app_ctx, ada):
    post = factories.post(ada)
    post.title = "changed"
    enqueue_after_commit(demo, 0, "never")
    db.session.rollback()
    db.session.commit()  # a later commit must not pick up the dropped job
    assert queued_ids() == []


def test_a_failed_commit_enqueues_nothing(app_ctx, ada):
    db.session.add(Post(author_id=ada, title=None, body="no title"))  # NOT NULL violation
    enqueue_after_commit(demo, 0, "never")
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert queued_ids() == []


def test_with_no_transaction_open_the_job_goes_at_once(app_ctx):
    enqueue_after_commit(demo, 0, "now", queue="low")
    assert len(queued_ids("low")) == 1


def test_redis_down_at_commit_loses_nothing_and_is_logged(app, caplog, ada):
    with app.app_context():
        app.extensions["redis"] = Redis.from_url("redis://127.0.0.1:1/0?socket_connect_timeout=1")
        post = factories.post(ada)
        post.title = "changed"
        enqueue_after_commit(demo, 0, "lost")
        with caplog.at_level(logging.WARNING, logger="blog.queues"):
            db.session.commit()
        assert db.session.get(Post, post.id).title == "changed"
    assert "could not enqueue demo(0, 'lost') on default" in caplog.text


def test_unknown_queue_is_refused(app_ctx):
    with pytest.raises(ValueError, match="unknown queue 'fast'"):
        get_queue("fast")


@pytest.mark.parametrize(
    "value",
    [object(), ["a list"], {"a": "dict"}, "x" * 201, "<script>alert(1)</script>", "a & b"],
)
def test_job_arguments_must_be_ids_or_short_plain_values(value):
    with pytest.raises(UnsafeJobArgument):
        check_job_arguments((value,), {})
    with pytest.raises(UnsafeJobArgument):
        check_job_arguments((), {"key": value})


def test_orm_objects_are_refused_as_job_arguments(app_ctx, ada):
    post = factories.post(ada)
    with pytest.raises(UnsafeJobArgument, match="not Post"):
        enqueue_after_commit(demo, post, "x")


def test_a_dotted_name_is_refused(app_ctx):
    with pytest.raises(TypeError, match="not its dotted name"):
        enqueue_after_commit("workers.demo.demo", 0, "x")


@pytest.mark.parametrize("value", [1, 2.5, True, None, "a demo message"])
def test_plain_values_are_fine(value):
    check_job_arguments((value,), {"key": value})


def enqueue_calls_outside_the_queue_layer() -> list[str]:
    """Every call of an RQ enqueue method in the app's code, except blog/queues.py."""
    found = []
    for path in [*ROOT.glob("blog/**/*.py"), *ROOT.glob("workers/**/*.py"), ROOT / "app.py"]:
        if path == ROOT / "blog" / "queues.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ENQUEUE_METHODS
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_every_enqueue_goes_through_the_checked_queue_layer():
    # blog/queues.py checks every job's arguments; nothing may go round it.
    assert enqueue_calls_outside_the_queue_layer() == []


def test_backoff_has_sidekiqs_shape(app):
    app.config["RETRY_BACKOFF_FACTOR"] = 1
    with app.app_context():
        retry = backoff(4)
    assert retry.max == 4
    lows, highs = [15, 16, 31, 96], [25, 36, 61, 136]
    assert all(lo <= wait <= hi for lo, wait, hi in zip(lows, retry.intervals, highs, strict=True))


def test_backoff_factor_zero_retries_at_once(app_ctx):
    assert backoff(3).intervals == [0, 0, 0]


def test_queues_are_served_in_priority_order():
    assert QUEUE_NAMES == ("urgent", "mailers", "default", "low")


def test_delay_schedules_the_job(app_ctx):
    enqueue_after_commit(demo, 0, "later", delay=timedelta(minutes=5))
    queue: Queue = get_queue("default")
    assert queue.count == 0
    assert queue.scheduled_job_registry.count == 1
