"""Tracing (blog/tracing.py): one trace from the request that saved a post to its job's SQL,
and nothing of OpenTelemetry in any process while OTEL_EXPORTER_OTLP_ENDPOINT is unset."""

import http.server
import subprocess
import sys
import threading
import typing

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from blog import tracing
from blog.queues import enqueue
from tests import jobs
from tests.dynos import ROOT

POST = {"title": "Background jobs with Redis", "body": "Redis and RQ run background jobs."}


@pytest.fixture(scope="module", autouse=True)
def exporter():
    """Tracing on in this process, into memory, for this module's tests: started before any
    of their apps is made, as create_app starts it when configured."""
    exporter = InMemorySpanExporter()
    tracing.start("tests", make_exporter=lambda: exporter)
    yield exporter
    tracing.stop()


@pytest.fixture
def spans(exporter):
    """The spans ended so far in this test: call it."""
    exporter.clear()

    def finished():
        tracing.flush()
        return exporter.get_finished_spans()

    return finished


def test_one_trace_runs_from_the_request_to_the_jobs_sql(
    app, client, auth, author_id, run_jobs, spans
):
    auth.login()
    assert client.post("/posts/new", data=POST).status_code == 302
    run_jobs()

    ended = spans()
    (request,) = [s for s in ended if s.kind == SpanKind.SERVER and s.name == "POST /posts/new"]
    trace = [s for s in ended if s.context.trace_id == request.context.trace_id]
    by_id = {s.context.span_id: s for s in trace}

    def parents(span):
        while span.parent is not None and span.parent.span_id in by_id:
            span = by_id[span.parent.span_id]
            yield span

    (enqueue_span,) = [s for s in trace if s.name == "enqueue workers.tagging.auto_tag_post"]
    assert enqueue_span.kind == SpanKind.PRODUCER
    assert request in parents(enqueue_span)
    (job_span,) = [s for s in trace if s.name == "run workers.tagging.auto_tag_post"]
    assert job_span.kind == SpanKind.CONSUMER
    assert job_span.parent.span_id == enqueue_span.context.span_id
    assert job_span.attributes["messaging.destination.name"] == "default"
    job_sql = [s for s in trace if "db.system" in s.attributes or "db.system.name" in s.attributes]
    job_sql = [s for s in job_sql if job_span in parents(s)]
    statements = " ".join(s.name for s in job_sql)
    assert "SELECT" in statements and "UPDATE" in statements, statements
    # The request's own INSERT, and the enqueue's Redis commands, are in the trace too.
    assert any(s.name.startswith("INSERT") and request in parents(s) for s in trace)
    assert any(s.kind == SpanKind.CLIENT and enqueue_span in parents(s) for s in trace)


def test_a_failing_job_marks_its_span(app, run_jobs, spans):
    with app.app_context():
        job = enqueue(jobs.fail_with, "on purpose")
    run_jobs()
    ended = spans()
    (job_span,) = [s for s in ended if s.name == "run tests.jobs.fail_with"]
    assert job_span.attributes["messaging.message.id"] == job.id
    assert not job_span.status.is_ok
    assert [e.name for e in job_span.events] == ["exception"]
    # Enqueued outside a request (as `flask jobs demo` does), the enqueue starts the trace.
    (enqueue_span,) = [s for s in ended if s.name == "enqueue tests.jobs.fail_with"]
    assert enqueue_span.parent is None
    assert job_span.parent.span_id == enqueue_span.context.span_id


def test_redis_commands_outside_a_request_or_a_job_start_no_trace(app, spans):
    app.extensions["redis"].ping()
    assert list(spans()) == []


def loaded_in_a_fresh_process(program: str, env: dict) -> set[str]:
    """The OpenTelemetry modules a fresh interpreter has loaded after ``program``."""
    program += ";import sys;print(*sorted(m for m in sys.modules if m.startswith('opentelemetry')))"
    result = subprocess.run(
        [sys.executable, "-c", program],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(result.stdout.splitlines()[-1].split())


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_without_an_endpoint_no_process_loads_any_of_tracing(
    app, live_redis, rq_worker, process_env, mode
):
    env = {**process_env, "OTEL_EXPORTER_OTLP_ENDPOINT": ""}
    # redis-py 8 imports OpenTelemetry's metrics API whenever it is installed, for metrics
    # of its own that the app leaves off: that much any process has, and no more.
    baseline = loaded_in_a_fresh_process("import redis", env)
    tracing_parts = (
        "opentelemetry.sdk.trace",
        "opentelemetry.instrumentation.",
        "opentelemetry.exp",
    )
    assert not any(m.startswith(tracing_parts) for m in baseline)
    web = loaded_in_a_fresh_process("import app; app.app.test_client().get('/')", env)
    assert web == baseline
    with app.app_context():
        job = enqueue(jobs.modules_loaded, "opentelemetry")
    rq_worker(env={"OTEL_EXPORTER_OTLP_ENDPOINT": "", "WORKER_MODE": mode})
    job.refresh()
    assert set(job.return_value()) == baseline


class Collector(http.server.BaseHTTPRequestHandler):
    """An OpenTelemetry collector's OTLP/HTTP endpoint, keeping the spans it is sent."""

    spans: typing.ClassVar[list] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportTraceServiceRequest.FromString(body)
        for resource in request.resource_spans:
            for scope in resource.scope_spans:
                self.spans.extend(scope.spans)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def collector():
    Collector.spans = []
    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", Collector.spans
    server.shutdown()
    server.server_close()


@pytest.mark.integration
@pytest.mark.parametrize("mode", ["threads", "fork"])
def test_the_real_worker_sends_the_jobs_spans_into_the_requests_trace(
    client, auth, author_id, live_redis, rq_worker, collector, spans, mode
):
    endpoint, received = collector
    auth.login()
    client.post("/posts/new", data=POST)
    (enqueue_span,) = [s for s in spans() if s.name == "enqueue workers.tagging.auto_tag_post"]

    rq_worker(env={"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "WORKER_MODE": mode})

    (job_span,) = [s for s in received if s.name == "run workers.tagging.auto_tag_post"]
    assert int.from_bytes(job_span.trace_id) == enqueue_span.context.trace_id
    assert int.from_bytes(job_span.parent_span_id) == enqueue_span.context.span_id
    queries = [s.name.split()[0] for s in received if s.parent_span_id == job_span.span_id]
    assert {"SELECT", "UPDATE"} <= set(queries), queries
