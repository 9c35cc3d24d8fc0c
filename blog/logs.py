"""The log lines of every process: text by default, or one JSON object per line
(``LOG_FORMAT=json``), each carrying the id of the request or the job it belongs to.

A platform's log search (Papertrail, Datadog, Loki ...) reads JSON lines as fields, so
"every line of request 5f0c..." or "every line of job 3e1a..." is one query. The ids:

- **a web request's** is the ``X-Request-ID`` header of the platform's router (Heroku's
  sets one; nginx does with ``proxy_set_header X-Request-ID $request_id``) when it looks
  like an id, else a new one. The response
  carries it back in its own ``X-Request-ID``, so the router's log line, the app's lines
  and a user's "it failed, request id ..." all meet;
- **a job's** id and function are set by the worker around each job
  (``workers.worker.JobLog``): every line of the job, the work-horse's in fork mode too,
  carries them.

Both live in one context variable, which a filter on the handler copies onto each record,
so a line logged anywhere below (a job function, the tagger, RQ) needs nothing of its own.
A thread starts with the variable empty, so the jobs of a worker's threads never mix.
"""

import json
import logging
import re
import sys
import uuid
from contextvars import ContextVar, Token
from datetime import UTC, datetime

from flask import Flask, Response, current_app, g, request

from blog import timing

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The loggers that get the handler: ours, and in JSON mode RQ's (its worker would otherwise
# print text lines of its own among the JSON ones). gunicorn's are set in gunicorn.conf.py.
OWN_LOGGERS = ("blog", "workers")
RQ_LOGGER = "rq"

REQUEST_ID_HEADER = "X-Request-ID"
# What a request id from outside may be: what routers generate (UUIDs, hex, base64), short
# enough for a log line, and nothing that could forge one (no spaces, quotes or newlines).
SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9+/=_.:-]{1,200}")

# The fields of the request or job being served here: {"request_id": ...} or
# {"job_id": ..., "job_function": ...}.
log_context: ContextVar[dict[str, str] | None] = ContextVar("log_context", default=None)

log = logging.getLogger(__name__)


def bind(**fields: str) -> Token:
    """Add ``fields`` to every line logged from here on, in this thread; ``unbind`` ends it."""
    return log_context.set({**(log_context.get() or {}), **fields})


def unbind(token: Token) -> None:
    log_context.reset(token)


class ContextFilter(logging.Filter):
    """Copies the current request's or job's fields onto each record, as ``record.context``."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.context = log_context.get() or {}
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the request's
    or job's ids, the fields a line passes in ``extra={"fields": {...}}``, and the traceback
    of an exception, if any, as one string (so it stays one line)."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **getattr(record, "context", {}),
            **getattr(record, "fields", {}),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter()
    return logging.Formatter(TEXT_FORMAT, "%H:%M:%S")


def handler(log_format: str, stream=None) -> logging.Handler:
    """A handler writing to ``stream`` (stdout, where a platform collects logs)."""
    made = logging.StreamHandler(stream or sys.stdout)
    made.setFormatter(formatter(log_format))
    made.addFilter(ContextFilter())
    return made


def configure(log_format: str, level: str, stream=None) -> None:
    """Send the app's and the jobs' log lines to ``stream`` in ``log_format``.

    Only our own loggers (``blog.*``, ``workers.*``) get the handler in text mode: RQ and
    gunicorn set up their own, and a shared root handler would print their lines twice. In
    JSON mode RQ's logger gets it too: RQ then adds none of its own (its worker still sets
    the level of its own lines).
    """
    shared = handler(log_format, stream)
    names = OWN_LOGGERS + ((RQ_LOGGER,) if log_format == "json" else ())
    for name in names:
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(shared)
            logger.setLevel(level)
            logger.propagate = False


# --- Request ids ------------------------------------------------------------------------------


def request_id_from(header: str | None) -> str:
    """The router's request id when it looks like one, else a new one."""
    if header and SANE_REQUEST_ID.fullmatch(header):
        return header
    return str(uuid.uuid4())


def start_request() -> None:
    g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
    g.log_token = bind(request_id=g.request_id)


def finish_request(response: Response) -> Response:
    response.headers[REQUEST_ID_HEADER] = g.get("request_id") or request_id_from(None)
    if current_app.config["LOG_FORMAT"] == "json":
        # JSON mode's line per request, in place of gunicorn's text access line.
        milliseconds = timing.request_duration_ms()
        log.info(
            "%s %s %s %.0fms",
            request.method,
            request.path,
            response.status_code,
            milliseconds,
            extra={
                "fields": {
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "duration_ms": round(milliseconds, 1),
                }
            },
        )
    return response


def end_request(error: BaseException | None) -> None:
    token = g.pop("log_token", None)
    if token is not None:
        unbind(token)


def init_app(app: Flask) -> None:
    """Give every request an id (first thing, so that every line of it carries the id) and,
    outside tests, configure the log lines."""
    # First of the app's before_request functions, so that none of them logs without it.
    app.before_request_funcs.setdefault(None, []).insert(0, start_request)
    app.after_request(finish_request)
    app.teardown_request(end_request)
    if not app.testing:
        configure(app.config["LOG_FORMAT"], app.config["LOG_LEVEL"])
