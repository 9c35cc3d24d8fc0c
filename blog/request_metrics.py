"""Counts and times of the web requests, by endpoint, method and status, for ``/metrics``.

They are kept in Redis, one hash of all-time counters, so that a scrape of any web process
counts the requests of every gunicorn worker of every web dyno. (prometheus_client's
multiprocess mode adds up the gunicorn workers of one machine only, and a platform's router
sends each scrape to any one of the web dynos.) Each request costs one pipelined write, sent
once the response has gone to the client. The times are the app's own, as ``Server-Timing``
reports them (``blog.timing``), in the job metrics' histogram buckets.

Endpoints are route names, not paths, so the series stay few: a request that matched no route
counts under the endpoint ``none``.
"""

import logging
from dataclasses import dataclass, field

from flask import Flask, Response, request
from redis import Redis
from redis.exceptions import RedisError

from blog import job_metrics, timing
from blog.queues import redis_connection

log = logging.getLogger(__name__)

KEY = f"{job_metrics.KEY_PREFIX}:http"
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass
class Route:
    """The requests of one endpoint and method."""

    endpoint: str
    method: str
    statuses: dict[int, int] = field(default_factory=dict)  # status → requests
    buckets: list[int] = field(default_factory=lambda: [0] * job_metrics.BUCKETS)
    seconds: float = 0.0  # all of them, together


def count_request(response: Response) -> Response:
    endpoint = request.endpoint or "none"
    method = request.method if request.method in METHODS else "other"
    seconds = timing.request_duration_ms() / 1000
    connection = redis_connection()
    status = response.status_code
    response.call_on_close(lambda: record(connection, endpoint, method, status, seconds))
    return response


def record(connection: Redis, endpoint: str, method: str, status: int, seconds: float) -> None:
    """Count one request, in one round trip."""
    try:
        with connection.pipeline(transaction=False) as pipe:
            pipe.hincrby(KEY, f"count|{endpoint}|{method}|{status}", 1)
            pipe.hincrby(KEY, f"bucket|{endpoint}|{method}|{job_metrics.bucket(seconds)}", 1)
            pipe.hincrby(KEY, f"micros|{endpoint}|{method}", round(seconds * 1_000_000))
            pipe.execute()
    except RedisError as error:  # the response has gone; only its count is lost
        log.warning("request metrics not recorded: %s", error)


def routes(connection: Redis) -> list[Route]:
    """Every endpoint and method that had requests, with their counts, sorted."""
    found: dict[tuple[str, str], Route] = {}
    for name, value in connection.hgetall(KEY).items():
        kind, endpoint, method, *rest = name.decode().split("|")
        route = found.setdefault((endpoint, method), Route(endpoint, method))
        if kind == "count":
            route.statuses[int(rest[0])] = int(value)
        elif kind == "bucket":
            route.buckets[int(rest[0])] = int(value)
        else:
            route.seconds = int(value) / 1_000_000
    return [found[key] for key in sorted(found)]


def init_app(app: Flask) -> None:
    app.after_request(count_request)
