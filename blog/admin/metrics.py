"""The metrics page: what each job function costs, from the worker's records in Redis
(``blog.job_metrics``), for admins (see ``blog.admin.security``)."""

from datetime import UTC, datetime, timedelta

from flask import Blueprint, abort, render_template, request

from blog import job_metrics
from blog.admin import chart
from blog.job_stats import Minute
from blog.queues import redis_connection
from blog.templating import format_datetime, format_duration

bp = Blueprint("metrics", __name__, url_prefix="/admin/metrics")

BARS = 60  # per time series, whatever the window: a bar is a minute of the hour, 72 of 72 hours
HISTOGRAM_HEIGHT = 80


def chosen_window() -> str:
    window = request.args.get("window", "1h")
    return window if window in job_metrics.WINDOWS else "1h"


@bp.get("/")
def index():
    window = chosen_window()
    length = job_metrics.WINDOWS[window]
    now = datetime.now(UTC)
    connection = redis_connection()
    rows = []
    for function in job_metrics.functions(connection, since=now - timedelta(minutes=length)):
        records = job_metrics.minutes(connection, function.queue, function.name, length, now)
        counts = job_metrics.total(counts for _, counts in records)
        if counts.executions:
            rows.append((function, counts))
    return render_template(
        "admin/metrics.html",
        window=window,
        windows=job_metrics.WINDOWS,
        rows=rows,
        now=now,
    )


@bp.get("/<queue_name>/<function_name>")
def one_function(queue_name: str, function_name: str):
    connection = redis_connection()
    known = {(f.queue, f.name) for f in job_metrics.functions(connection)}
    if (queue_name, function_name) not in known:
        abort(404)
    window = chosen_window()
    now = datetime.now(UTC)
    records = job_metrics.minutes(
        connection, queue_name, function_name, job_metrics.WINDOWS["72h"], now
    )
    shown = records[-job_metrics.WINDOWS[window] :]
    counts = job_metrics.total(c for _, c in shown)
    slots = job_metrics.slots(shown, BARS)
    start, end = shown[0][0], shown[-1][0] + timedelta(minutes=1)
    deploys = job_metrics.releases(connection, since=start)
    return render_template(
        "admin/metrics_function.html",
        queue_name=queue_name,
        function=function_name,
        window=window,
        windows=job_metrics.WINDOWS,
        by_window=job_metrics.windows(records),
        counts=counts,
        series=chart.per_minute([Minute(start, c.executions, c.failures) for start, c in slots]),
        minutes_per_bar=len(shown) // len(slots),
        deploys=deploys,
        deploy_marks=chart.marks(
            [(moment, f"{name} deployed {format_datetime(moment)}") for name, moment in deploys],
            start,
            end,
        ),
        times=histogram(counts.time_buckets),
        waits=histogram(counts.wait_buckets),
        histogram_axis=[
            bucket_label(i) for i in (0, job_metrics.BUCKETS // 2, len(job_metrics.BOUNDS))
        ],
        now=now,
    )


def histogram(buckets: list[int]) -> chart.Strip:
    labels = [f"{bucket_label(i)}: {count:,}" for i, count in enumerate(buckets)]
    return chart.bars(buckets, labels, HISTOGRAM_HEIGHT)


def bucket_label(index: int) -> str:
    """The bucket's bound: "≤ 5 ms", or "> 41.7 min" for the last bucket."""
    if index == len(job_metrics.BOUNDS):
        return f"> {format_duration(job_metrics.BOUNDS[-1])}"
    return f"≤ {format_duration(job_metrics.BOUNDS[index])}"
