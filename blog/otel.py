"""The OpenTelemetry SDK, set up for this app; imported by ``blog.tracing`` only when tracing
is on (it weighs about 15 MB, which a worker without tracing should not carry).

- **Export:** OTLP over HTTP, configured by the standard variables
  (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS`` for a vendor's key ...),
  in batches, from a background thread.
- **Sampling:** every trace that starts at a request or a job, and none that would start at
  a lone Redis command or SQL query: the worker polls Redis all day long (for jobs, its
  heartbeats, the scheduler), and those traces would bury the ones that matter.
- **Forks:** the worker's processes are forked from its supervisor, and a forking worker's
  work-horses from them. A child inherits its parent's tracer provider, but not the thread
  that exports the spans, and it must not share its parent's connection to the collector,
  so each process sends its spans through an export pipeline of its own, made when it ends
  its first span (``PerProcessExport``).
- **Instrumentations:** Flask's (each request; health checks and static files left out),
  SQLAlchemy's (each query of the engines created from now on) and redis-py's (each command
  and pipeline).
"""

import os
import threading

from flask import Flask
from opentelemetry import context, propagate, trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.redis import RedisInstrumentor
from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import SpanKind, Status, StatusCode

# Requests not worth a trace: the platform's health checks, every few seconds, and files.
EXCLUDED_URLS = "healthz,static/,favicon.ico"

_provider: TracerProvider | None = None
_tracer: trace.Tracer | None = None


class RootsOfWork(Sampler):
    """Starts a trace at a request, a job or an enqueue, never at a client call (a Redis
    command, a query) made outside one; spans inside a trace follow their parent's
    decision (``ParentBased``)."""

    def should_sample(
        self, parent_context, trace_id, name, kind=None, attributes=None, links=None, **_
    ):
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "RootsOfWork"


class PerProcessExport(SpanProcessor):
    """Sends the spans ended in this process through a batch processor and exporter made in
    this process, on first use: a forked child makes its own."""

    def __init__(self, make_exporter):
        self._make_exporter = make_exporter
        self._forget()
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        # In a child, the parent's lock may have been held by a thread that is not there.
        self._lock = threading.Lock()
        self._batch: BatchSpanProcessor | None = None

    def _processor(self) -> BatchSpanProcessor:
        with self._lock:
            if self._batch is None:
                self._batch = BatchSpanProcessor(self._make_exporter())
            return self._batch

    def on_end(self, span) -> None:
        self._processor().on_end(span)

    def shutdown(self) -> None:
        if self._batch is not None:
            self._batch.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        if self._batch is None:
            return True
        return self._batch.force_flush(timeout_millis)


def otlp_exporter():
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()  # reads OTEL_EXPORTER_OTLP_* itself


def start(service_name: str, make_exporter=None) -> None:
    """Set the SDK up in this process: the provider, its export, and the instrumentations
    of the libraries every app in it uses (redis-py, SQLAlchemy)."""
    global _provider, _tracer
    if _provider is None:  # once per process: the SDK lets a process set one provider
        _provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}),
            sampler=ParentBased(root=RootsOfWork()),
        )
        _provider.add_span_processor(PerProcessExport(make_exporter or otlp_exporter))
        trace.set_tracer_provider(_provider)  # for spans the jobs may make of their own
        _tracer = _provider.get_tracer(__name__)
    RedisInstrumentor().instrument(tracer_provider=_provider)
    # The instrumentation declares SQLAlchemy below 2.1; the query events it listens to are
    # those of 2.1 too (tests/test_tracing.py checks its spans).
    SQLAlchemyInstrumentor().instrument(tracer_provider=_provider, skip_dep_check=True)


def stop() -> None:
    """Undo ``start``'s instrumentations and send what is left (the provider and its export
    stay, for a later ``start``)."""
    RedisInstrumentor().uninstrument()
    SQLAlchemyInstrumentor().uninstrument()
    flush()


def instrument_app(app: Flask) -> None:
    FlaskInstrumentor.instrument_app(app, tracer_provider=_provider, excluded_urls=EXCLUDED_URLS)


def enqueue_span(function: str, queue: str, count: int):
    attributes = {
        "messaging.system": "rq",
        "messaging.operation.type": "send",
        "messaging.destination.name": queue,
        "code.function.name": function,
    }
    if count != 1:
        attributes["messaging.batch.message_count"] = count
    return _tracer.start_as_current_span(
        f"enqueue {function}", kind=SpanKind.PRODUCER, attributes=attributes
    )


def current_context() -> dict[str, str]:
    """The current trace context, as the W3C headers that carry it (``traceparent``)."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier


def job_span(job, carrier: dict[str, str], queue_name: str):
    return _tracer.start_as_current_span(
        f"run {job.func_name}",
        context=propagate.extract(carrier, context=context.Context()),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "rq",
            "messaging.operation.type": "process",
            "messaging.destination.name": queue_name,
            "messaging.message.id": job.id,
            "code.function.name": job.func_name,
        },
    )


def record_exception(error: BaseException) -> None:
    span = trace.get_current_span()
    span.record_exception(error)
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def flush() -> None:
    if _provider is not None:
        _provider.force_flush()
