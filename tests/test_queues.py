import ast
import logging
from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq import Queue
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from blog.extensions import db
from blog.models import Post, TaggingState
from blog.queues import (
    QUEUE_NAMES,
    JobRequest,
    UnsafeJobArgument,
    backoff,
    check_job_arguments,
    enqueue,
    enqueue_after_commit,
    enqueue_many,
    get_queue,
)
from tests import factories
from workers.demo import demo

ROOT = Path(__file__).resolve().parent.parent
ENQUEUE_METHODS = {"enqueue", "enqueue_call", "enqueue_in", "enqueue_at", "enqueue_many"}


def queued_ids(name="default") -> list[str]:
    return get_queue(name).job_ids


def test_the_job_reaches_redis_only_after_commit(app_ctx, author_id):
    post = factories.post(author_id)
    post.title = "changed"
    enqueue_after_commit(demo, 0, "after commit")
    assert queued_ids() == []
    db.session.commit()
    assert len(queued_ids()) == 1


def test_a_rollback_enqueues_nothing(app_ctx, author_id):
    post = factories.post(author_id)
    post.title = "changed"
    enqueue_after_commit(demo, 0, "never")
    db.session.rollback()
    db.session.commit()  # a later commit must not pick up the dropped job
    assert queued_ids() == []


def test_a_failed_commit_enqueues_nothing(app_ctx, author_id):
    db.session.add(Post(author_id=author_id, title=None, body="no title"))  # NOT NULL violation
    enqueue_after_commit(demo, 0, "never")
    with pytest.raises(IntegrityError):
        db.session.commit()
    db.session.rollback()
    assert queued_ids() == []


def test_with_no_transaction_open_the_job_waits_for_the_next_commit(app_ctx):
    enqueue_after_commit(demo, 0, "next commit", queue="low")
    assert queued_ids("low") == []
    db.session.commit()
    assert len(queued_ids("low")) == 1


def test_with_no_transaction_open_a_rollback_drops_the_job(app_ctx):
    enqueue_after_commit(demo, 0, "never", queue="low")
    db.session.rollback()
    db.session.commit()
    assert queued_ids("low") == []


def test_a_rolled_back_savepoint_drops_its_jobs_and_keeps_the_others(app_ctx, author_id):
    post = factories.post(author_id)
    post.title = "kept"
    enqueue_after_commit(demo, 0, "outer")
    with pytest.raises(IntegrityError), db.session.begin_nested():
        db.session.add(Post(author_id=author_id, title=None, body="no title"))  # NOT NULL violation
        enqueue_after_commit(demo, 0, "inner")
    db.session.commit()
    assert [job.args for job in get_queue("default").get_jobs()] == [(0, "outer")]


def test_a_released_savepoint_waits_for_the_outer_commit(app_ctx, author_id):
    factories.post(author_id).title = "changed"
    with db.session.begin_nested():
        enqueue_after_commit(demo, 0, "inner")
    assert queued_ids() == []  # the savepoint is released, the transaction still open
    db.session.commit()
    assert len(queued_ids()) == 1


def test_jobs_of_a_savepoint_are_dropped_when_the_outer_transaction_rolls_back(app_ctx, author_id):
    factories.post(author_id).title = "changed"
    with db.session.begin_nested():
        enqueue_after_commit(demo, 0, "inner")
    db.session.rollback()
    db.session.commit()
    assert queued_ids() == []


def test_an_unexpected_error_after_the_commit_is_logged_and_the_data_kept(
    client, auth, app, author_id, caplog, monkeypatch
):
    def broken(request):
        raise ValueError("not a Redis error")

    monkeypatch.setattr(JobRequest, "enqueue", broken)
    auth.login()
    with caplog.at_level(logging.ERROR, logger="blog.queues"):
        response = client.post("/posts/new", data={"title": "Kept", "body": "Saved anyway."})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalars(select(Post)).one().tagging_state == TaggingState.PENDING
    (record,) = caplog.records
    assert record.getMessage().startswith("could not enqueue auto_tag_post(1,) on default")
    assert record.exc_info[0] is ValueError


def test_redis_down_at_commit_loses_nothing_and_is_logged(app, caplog, author_id):
    with app.app_context():
        app.extensions["redis"] = Redis.from_url("redis://127.0.0.1:1/0?socket_connect_timeout=1")
        post = factories.post(author_id)
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
def test_job_arguments_must_be_ids_or_short_plain_values(app_ctx, value):
    with pytest.raises(UnsafeJobArgument):
        enqueue(demo, 0, value)
    with pytest.raises(UnsafeJobArgument):
        enqueue(demo, 0, kwargs={"message": value})
    with pytest.raises(UnsafeJobArgument):
        enqueue_after_commit(demo, 0, value)
    assert queued_ids() == []


def test_a_keyword_that_is_not_an_rq_option_cannot_slip_an_argument_through(app_ctx):
    with pytest.raises(UnsafeJobArgument, match="'message' is not an enqueue option"):
        enqueue(demo, 0, message="<script>")
    with pytest.raises(UnsafeJobArgument, match="not an enqueue option"):
        enqueue_after_commit(demo, 0, message="hello")
    with pytest.raises(UnsafeJobArgument, match="not an enqueue option"):
        enqueue_many(demo, [(0, "hello")], description="<script>")
    assert queued_ids() == []


@pytest.mark.parametrize(
    "options",
    [{"job_id": "<b>"}, {"job_id": 3}, {"job_timeout": "60"}, {"retry": 3}, {"ttl": True}],
)
def test_rq_options_are_checked_too(app_ctx, options):
    with pytest.raises(UnsafeJobArgument):
        enqueue(demo, 0, "x", **options)
    assert queued_ids() == []


def test_checked_kwargs_reach_the_job(app_ctx):
    job = enqueue(demo, 0, kwargs={"message": "by name"}, job_timeout=30, job_id="named")
    assert (job.id, job.args, job.timeout) == ("named", (0,), 30)
    assert job.kwargs == {"message": "by name"}


def test_orm_objects_are_refused_as_job_arguments(app_ctx, author_id):
    post = factories.post(author_id)
    with pytest.raises(UnsafeJobArgument, match="not Post"):
        enqueue_after_commit(demo, post, "x")


def test_a_dotted_name_is_refused(app_ctx):
    with pytest.raises(TypeError, match="not its dotted name"):
        enqueue_after_commit("workers.demo.demo", 0, "x")


@pytest.mark.parametrize("value", [1, 2.5, True, None, "a demo message"])
def test_plain_values_are_fine(value):
    check_job_arguments((value,), {"key": value})


def test_unknown_queues_are_refused_before_the_commit(app_ctx):
    with pytest.raises(ValueError, match="unknown queue"):
        enqueue_after_commit(demo, 0, "x", queue="fast")


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


def test_delay_schedules_the_job(app_ctx):
    enqueue_after_commit(demo, 0, "later", delay=timedelta(minutes=5))
    db.session.commit()
    queue: Queue = get_queue("default")
    assert queue.count == 0
    assert queue.scheduled_job_registry.count == 1


def test_a_worker_serves_the_queues_in_priority_order(app, run_jobs, caplog):
    with app.app_context():
        for name in reversed(QUEUE_NAMES):  # the least urgent enqueued first
            enqueue(demo, 0, f"from {name}", queue=name)
    with caplog.at_level(logging.INFO, logger="workers.demo"):
        run_jobs()
    done = [r.getMessage() for r in caplog.records if r.getMessage().startswith("demo: done")]
    assert done == [f"demo: done: from {name}" for name in ("urgent", "mailers", "default", "low")]
