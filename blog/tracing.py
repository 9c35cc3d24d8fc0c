"""Tracing, off unless ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set: one trace from the request that
enqueued a job to the job's run in the worker.

With it set, each process sends OpenTelemetry spans to that endpoint (``blog.otel`` sets
the SDK up): Flask's span for each request, SQLAlchemy's for each query, redis-py's for
each command, and two of the app's own, which join the request and the job:

- ``enqueue <function>`` around putting a job on its queue (``blog.queues``). Its context
  (a W3C ``traceparent``) goes into the job's meta, under ``META_KEY``, so it travels with
  the job through Redis, a delay and its retries;
- ``run <function>`` where the job runs (``workers.worker``: the worker's thread, or the
  work-horse in fork mode), a child of the enqueue span; the job's queries are its children.

A trace in Jaeger, Honeycomb or Grafana Tempo then reads: POST /posts/new, its INSERT, the
enqueue, and a few seconds later the job's run, its SELECT and UPDATE.

Unset, ``blog.otel`` is never imported, so neither is the SDK's tracing nor an
instrumentation, and each function here returns at once. (redis-py 8 imports OpenTelemetry's
metrics API by itself wherever it is installed: ``tests/test_tracing.py`` holds every process
to that much.)
"""

import contextlib
from collections.abc import Iterator

from flask import Flask

# Where a job's meta keeps the trace context of the enqueue that made it.
META_KEY = "trace"

_otel = None  # blog.otel, once tracing is on in this process


def init_app(app: Flask) -> None:
    """Trace this app when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (or tracing was started
    already, as the tests do). Called before the app's database engine is made: the SDK
    traces the queries of the engines made after it starts."""
    if app.config["OTEL_EXPORTER_OTLP_ENDPOINT"] and _otel is None:
        start(app.config["OTEL_SERVICE_NAME"])
    if _otel is not None:
        _otel.instrument_app(app)


def start(service_name: str, make_exporter=None) -> None:
    """Turn tracing on in this process, exporting over OTLP (or to ``make_exporter()``)."""
    global _otel
    from blog import otel

    otel.start(service_name, make_exporter)
    _otel = otel


def stop() -> None:
    """Turn tracing off in this process again (for tests)."""
    global _otel
    if _otel is not None:
        _otel.stop()
        _otel = None


def enabled() -> bool:
    return _otel is not None


@contextlib.contextmanager
def enqueue_span(function: str, queue: str, count: int = 1) -> Iterator[None]:
    """The span of putting ``count`` jobs of ``function`` on ``queue``."""
    if _otel is None:
        yield
        return
    with _otel.enqueue_span(function, queue, count):
        yield


def job_meta() -> dict:
    """What goes into a job's meta as it is enqueued: the current trace context, if any."""
    if _otel is None:
        return {}
    carrier = _otel.current_context()
    return {META_KEY: carrier} if carrier else {}


@contextlib.contextmanager
def job_span(job, queue_name: str, exits_after: bool) -> Iterator[None]:
    """The span of running ``job``, a child of the enqueue span its meta names.

    ``exits_after``: the process ends as soon as the job does (a forking worker's
    work-horse leaves with ``os._exit``), so its spans are sent before that.
    """
    if _otel is None:
        yield
        return
    with _otel.job_span(job, job.meta.get(META_KEY) or {}, queue_name):
        yield
    if exits_after:
        _otel.flush()


def record_exception(error: BaseException) -> None:
    """Note the exception a job raised on its span (RQ handles it before the span ends)."""
    if _otel is not None:
        _otel.record_exception(error)


def flush() -> None:
    """Send the spans this process still holds: before a process leaves with ``os._exit``."""
    if _otel is not None:
        _otel.flush()
