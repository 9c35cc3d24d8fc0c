"""LOG_FORMAT=json: one JSON object per line, with the request's id on every line of a
request and the job's id and function on every line of a job (blog/logs.py)."""

import io
import json
import logging
import uuid

import pytest

from blog import logs
from blog.queues import enqueue
from tests.jobs import fail_with
from workers.demo import demo


@pytest.fixture
def json_lines():
    """The app's log lines, as LOG_FORMAT=json writes them: read them with ``json_lines()``."""
    stream = io.StringIO()
    handler = logs.handler("json", stream)
    logger = logging.getLogger("blog")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def json_app(make_app):
    app = make_app(LOG_FORMAT="json")

    @app.get("/logs-twice")
    def logs_twice():
        logging.getLogger("blog.views").info("first")
        logging.getLogger("blog.views").warning("second")
        return "logged"

    return app


def test_every_line_of_a_request_carries_its_id(json_app, json_lines):
    response = json_app.test_client().get("/logs-twice")
    request_id = response.headers["X-Request-ID"]
    uuid.UUID(request_id)  # a new one: the request came with none
    first, second, request_line = json_lines()
    assert (first["message"], first["level"], first["logger"]) == ("first", "INFO", "blog.views")
    assert (second["message"], second["level"]) == ("second", "WARNING")
    assert request_line["message"].startswith("GET /logs-twice 200 ")
    assert (request_line["method"], request_line["path"], request_line["status"]) == (
        "GET",
        "/logs-twice",
        200,
    )
    assert {line["request_id"] for line in (first, second, request_line)} == {request_id}
    assert all(line["time"].endswith("+00:00") for line in (first, second, request_line))


def test_each_request_gets_an_id_of_its_own(json_app, json_lines):
    client = json_app.test_client()
    ids = {client.get("/logs-twice").headers["X-Request-ID"] for _ in range(2)}
    assert len(ids) == 2
    assert {line["request_id"] for line in json_lines()} == ids


def test_the_routers_request_id_is_kept(json_app, json_lines):
    router_id = "f3b1c2d4-5e6f-4a7b-8c9d-0e1f2a3b4c5d"
    response = json_app.test_client().get("/nowhere", headers={"X-Request-ID": router_id})
    assert response.status_code == 404
    assert response.headers["X-Request-ID"] == router_id
    (line,) = json_lines()
    assert (line["request_id"], line["status"], line["path"]) == (router_id, 404, "/nowhere")


@pytest.mark.parametrize(
    "header", ["", "two words", 'a"quote', "x" * 201, "tab\there", "<script>", "é"]
)
def test_a_request_id_that_does_not_look_like_one_is_replaced(json_app, header):
    response = json_app.test_client().get("/healthz", headers={"X-Request-ID": header})
    assert response.headers["X-Request-ID"] != header
    uuid.UUID(response.headers["X-Request-ID"])


def test_text_mode_writes_no_request_line_but_still_answers_the_id(make_app, json_lines):
    response = make_app().test_client().get("/nowhere")
    assert response.headers["X-Request-ID"]
    assert json_lines() == []  # gunicorn's access line does that job in text mode


def test_an_exception_stays_on_one_line():
    stream = io.StringIO()
    logger = logging.getLogger("blog.test_logs")
    handler = logs.handler("json", stream)
    logger.addHandler(handler)
    try:
        try:
            raise ValueError("bad\nvalue")
        except ValueError:
            logger.exception("it failed")
    finally:
        logger.removeHandler(handler)
    (line,) = stream.getvalue().splitlines()
    entry = json.loads(line)
    assert entry["message"] == "it failed"
    assert entry["exception"].startswith("Traceback")
    assert "ValueError: bad\nvalue" in entry["exception"]


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_every_line_of_a_job_carries_its_id_and_function(app, live_redis, rq_worker, mode):
    with app.app_context():
        jobs = [enqueue(demo, 0, f"job {n}") for n in range(3)]
        failing = enqueue(fail_with, "on purpose")
    output = rq_worker(env={"LOG_FORMAT": "json", "WORKER_MODE": mode}).stdout
    lines = [json.loads(line) for line in output.splitlines()]  # every line is JSON
    for n, job in enumerate(jobs):
        mine = [line for line in lines if line.get("job_id") == job.id]
        assert {line["job_function"] for line in mine} == {"workers.demo.demo"}
        assert [line["message"] for line in mine[:3]] == [
            f"job {job.id} workers.demo.demo on default: started",
            f"demo: working for 0.0s on 'job {n}'",
            f"demo: done: job {n}",
        ]
        assert mine[3]["message"].startswith(f"job {job.id} workers.demo.demo on default: finished")
        assert len(mine) == 4
    # RQ's report of a job's exception: its traceback, on the one line.
    (report,) = [line for line in lines if line["level"] == "ERROR"]
    assert (report["logger"], report["job_id"]) == ("rq.worker", failing.id)
    assert "Traceback" in report["message"]
    assert report["message"].rstrip().endswith("tests.jobs.Failure: on purpose")
    # The worker's own lines, outside any job, carry no job's id.
    assert any("job_id" not in line and line["logger"].startswith("workers") for line in lines)
