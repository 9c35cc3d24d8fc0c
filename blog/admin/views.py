"""The stats page: how the background jobs are doing, for admins (see blog.admin.security)."""

import time
from datetime import UTC, datetime

from flask import Blueprint, current_app, flash, redirect, render_template, url_for

from blog import dead_jobs, job_stats, queue_admin, redis_keys
from blog.admin import chart
from blog.queues import redis_connection

bp = Blueprint("admin", __name__, url_prefix="/admin")

REFRESH_SECONDS = 5
# Counting what Redis holds reads every key: once a minute at most, not at every refresh.
KEYSPACE_SECONDS = 60


@bp.app_template_filter()
def thousands(number: int) -> str:
    return f"{number:,}"


bp.add_app_template_filter(redis_keys.human_bytes)


def worker_summary(workers: list[queue_admin.WorkerStats]) -> str:
    """The words after the number of workers: "1 worker, idle", "2 workers: 1 busy"."""
    busy = queue_admin.busy(workers)
    if len(workers) == 1:
        return "worker, busy" if busy else "worker, idle"
    return f"workers: {busy} busy" if workers else "workers running"


def recent_keyspace(connection) -> tuple[redis_keys.Keyspace, datetime]:
    """``redis_keys.keyspace``, counted again by this process once the last count is a
    minute old; and when it was counted."""
    counted = current_app.extensions.get("admin_keyspace")
    if counted is None or time.monotonic() - counted[0] > KEYSPACE_SECONDS:
        counted = (time.monotonic(), redis_keys.keyspace(connection), datetime.now(UTC))
        current_app.extensions["admin_keyspace"] = counted
    return counted[1], counted[2]


@bp.get("/")
def index():
    return redirect(url_for(".stats"))


@bp.get("/stats")
def stats():
    connection = redis_connection()
    queues = queue_admin.queue_stats()
    workers = queue_admin.worker_stats()
    blog = job_stats.cached_blog_stats(connection)
    keyspace, keyspace_counted_at = recent_keyspace(connection)
    if blog:
        blog["computed_at"] = datetime.fromisoformat(blog["computed_at"])
    return render_template(
        "admin/stats.html",
        totals=job_stats.totals(connection),
        chart=chart.per_minute(job_stats.last_hour(connection)),
        queues=queues,
        workers=workers,
        worker_summary=worker_summary(workers),
        blog=blog,
        keyspace=keyspace,
        keyspace_counted_at=keyspace_counted_at,
        dead_trim=dead_jobs.last_trim(connection),
        now=datetime.now(UTC),
        refresh_seconds=REFRESH_SECONDS,
    )


@bp.post("/stats/reset")
def reset_stats():
    """Sidekiq's "reset": the processed and failed counters back to zero. The form carries a
    CSRF token; blog.admin.security lets only an admin, on a page of this site, get here."""
    before = job_stats.reset(redis_connection())
    flash(
        f"Counters reset (they were {before[job_stats.PROCESSED]:,} processed, "
        f"{before[job_stats.FAILED]:,} failed).",
        "info",
    )
    return redirect(url_for(".stats"))
