"""``/metrics``: the job metrics, queues, workers and web requests in Prometheus's text format.

Everything is read from Redis when Prometheus scrapes, never counted in the web process's
memory: the workers' all-time records (``blog.job_metrics``) for the job counters and
histograms, RQ's queues and workers, and the web requests' counters (``blog.request_metrics``).
So every scrape of any web process sees the same figures,
whichever gunicorn worker answers and however many worker processes ran the jobs, and a
restart loses nothing.

Never open: it answers an admin's session, or a request with ``Authorization: Bearer`` and
the ``METRICS_TOKEN`` of the config; anyone else gets a 401 (a 404 when no token is set, as
then only admins could ever see it).
"""

import secrets

from flask import Blueprint, Response, abort, current_app, request
from flask_login import current_user
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString
from redis import Redis

from blog import job_metrics, queue_admin, request_metrics
from blog.queues import redis_connection

bp = Blueprint("prometheus", __name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
JOB_LABELS = ["function", "queue", "outcome"]


def allowed() -> bool:
    token = current_app.config["METRICS_TOKEN"]
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and secrets.compare_digest(given.encode(), token.encode())
    ):
        return True
    return current_user.is_authenticated and current_user.is_admin


@bp.get("/metrics")
def metrics():
    if not allowed():
        if not current_app.config["METRICS_TOKEN"]:
            abort(404)
        return Response("A bearer token is required.\n", 401, {"WWW-Authenticate": "Bearer"})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobCollector(redis_connection()))
    return Response(
        generate_latest(registry),
        headers={"Content-Type": CONTENT_TYPE, "Cache-Control": "no-store"},
    )


class JobCollector(Collector):
    """What Prometheus gets from Redis at each scrape."""

    def __init__(self, connection: Redis):
        self.connection = connection

    def collect(self):
        yield from self.job_metrics()
        yield from self.queues()
        yield self.workers()
        yield from self.requests()

    def job_metrics(self):
        executions = CounterMetricFamily(
            "blog_jobs", "Job executions, by function, queue and outcome.", labels=JOB_LABELS
        )
        durations = HistogramMetricFamily(
            "blog_job_duration_seconds", "How long job executions took.", labels=JOB_LABELS
        )
        waits = HistogramMetricFamily(
            "blog_job_wait_seconds",
            "How long jobs waited on their queue (from their due time, if scheduled).",
            labels=JOB_LABELS,
        )
        for function in job_metrics.functions(self.connection):
            records = job_metrics.all_time(self.connection, function.queue, function.name)
            for outcome, counts in records.items():
                labels = [function.name, function.queue, outcome]
                executions.add_metric(labels, counts.executions)
                durations.add_metric(
                    labels, cumulative(counts.time_buckets), sum_value=counts.time_total
                )
                waits.add_metric(
                    labels, cumulative(counts.wait_buckets), sum_value=counts.wait_total
                )
        yield from (executions, durations, waits)

    def queues(self):
        jobs = GaugeMetricFamily(
            "blog_queue_jobs", "Jobs of each queue, by state.", labels=["queue", "state"]
        )
        latency = GaugeMetricFamily(
            "blog_queue_latency_seconds",
            "How long the oldest waiting job of each queue has waited.",
            labels=["queue"],
        )
        for queue in queue_admin.queue_stats():
            for state in ("waiting", "scheduled", "retrying", "started", "failed"):
                jobs.add_metric([queue.name, state], getattr(queue, state))
            latency.add_metric([queue.name], queue.latency)
        yield from (jobs, latency)

    def workers(self):
        workers = GaugeMetricFamily("blog_workers", "RQ workers, by state.", labels=["state"])
        stats = queue_admin.worker_stats()
        busy = queue_admin.busy(stats)
        workers.add_metric(["busy"], busy)
        workers.add_metric(["idle"], len(stats) - busy)
        return workers

    def requests(self):
        requests = CounterMetricFamily(
            "blog_http_requests",
            "Web requests, by endpoint, method and status.",
            labels=["endpoint", "method", "status"],
        )
        durations = HistogramMetricFamily(
            "blog_http_request_duration_seconds",
            "How long the app took to answer web requests.",
            labels=["endpoint", "method"],
        )
        for route in request_metrics.routes(self.connection):
            for status, count in sorted(route.statuses.items()):
                requests.add_metric([route.endpoint, route.method, str(status)], count)
            durations.add_metric(
                [route.endpoint, route.method], cumulative(route.buckets), sum_value=route.seconds
            )
        yield from (requests, durations)


def cumulative(buckets: list[int]) -> list[tuple[str, int]]:
    """A histogram's bucket counts as Prometheus wants them: each bound with the count of
    everything at or under it, and "+Inf" with the count of all."""
    bounds = [floatToGoString(bound) for bound in job_metrics.BOUNDS] + ["+Inf"]
    running, pairs = 0, []
    for bound, count in zip(bounds, buckets, strict=True):
        running += count
        pairs.append((bound, running))
    return pairs
