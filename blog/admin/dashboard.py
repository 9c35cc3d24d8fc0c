"""rq-dashboard, mounted at ``/admin/rq`` on the app's own Redis connection.

``rq_dashboard.blueprint`` is one object for the whole process, and Flask refuses new hooks on
a blueprint once it has been registered. So everything here is set on the app being built,
never on the blueprint, and a second app (every test makes one) gets the same treatment.

Who may reach it, and from where, is decided for all of ``/admin`` in ``blog.admin.security``.
Its templates that show job data are overridden in ``templates/rq_dashboard/`` so that they
escape it: see the note at the top of each.
"""

import functools
import json
from urllib.parse import urlsplit, urlunsplit

import rq_dashboard
from flask import Flask, abort, current_app, request
from redis.exceptions import ResponseError
from rq import Queue, Worker
from rq.exceptions import InvalidJobOperation, NoSuchJobError
from rq.job import JOB_ID_PATTERN, Job
from rq_dashboard import web as upstream
from rq_dashboard.web import serialize_queues

from blog.bad_input import ID_MAX
from blog.config import without_password
from blog.errors import render_error
from blog.extensions import csrf
from blog.queue_admin import running_job
from blog.queues import QUEUE_NAMES, get_queue, redis_connection
from blog.security_headers import SITE_POLICY, with_policy

URL_PREFIX = "/admin/rq"
NAME = rq_dashboard.blueprint.name
REGISTRY_NAMES = ("queued", "failed", "deferred", "started", "finished", "scheduled", "canceled")
# Its pages offer 5 to 100 jobs a page.
PER_PAGE_MAX = 100
NO_STORE = {"Cache-Control": "no-store"}
# The site's policy, loosened as the dashboard needs: ``'unsafe-eval'`` for its templates,
# which Underscore's ``_.template`` compiles in the browser, and inline styles. Its one inline
# script runs by a nonce (added per response), and no other.
DASHBOARD_POLICY = {
    **SITE_POLICY,
    "script-src": "'self' 'unsafe-eval'",
    "style-src": "'self' 'unsafe-inline'",
}


def redis_label(url: str) -> str:
    """The Redis URL as the dashboard's header shows it: password hidden, no query string."""
    return urlunsplit(urlsplit(without_password(url))._replace(query=""))


def before_dashboard_request():
    """Hand the dashboard the app's Redis client, and refuse what it would mishandle."""
    current_app.redis_conn = redis_connection()
    args = request.view_args or {}
    if args.get("instance_number", 0) != 0:
        abort(404)  # the app has one Redis; the dashboard would fail on another number
    if args.get("queue_name") not in (None, *QUEUE_NAMES):
        abort(404)  # also keeps made-up names out of its pages and out of Redis
    if args.get("registry_name") not in (None, *REGISTRY_NAMES):
        abort(404)
    if args.get("job_id") is not None and not JOB_ID_PATTERN.fullmatch(args["job_id"]):
        abort(404)  # RQ raises ValueError on an id it could never have made
    # It would fail on int("abc"), divide by a page size of 0, or ask Redis for a range
    # beyond 64 bits.
    for key, highest in (("per_page", PER_PAGE_MAX), ("page", ID_MAX)):
        value = str(args.get(key, "1"))
        if not (value.isascii() and value.isdigit() and 1 <= int(value) <= highest):
            abort(404)
    if request.endpoint == f"{NAME}.requeue_all" and request.method != "POST":
        abort(405)  # a link or <img> on any site can send a GET


def with_dashboard_policy(view):
    """``view``, wrapped for this app alone, with the dashboard's policy."""

    @functools.wraps(view)
    def dashboard_view(*args, **kwargs):
        return view(*args, **kwargs)

    return with_policy(DASHBOARD_POLICY, nonce_in=("script-src",))(dashboard_view)


def compact_queue(queue_name: str):
    """The dashboard's Compact, which also works on an empty queue: RQ's ``compact()``
    renames the queue's list first, and Redis cannot rename a list that does not exist."""
    try:
        Queue(queue_name, connection=current_app.redis_conn).compact()
    except ResponseError as error:
        if "no such key" not in str(error).lower():
            raise
    return {"status": "OK"}, NO_STORE


def job_info(instance_number: int, job_id: str):
    """The dashboard's data for one job, which also works for a job with dependencies:
    rq-dashboard 0.9 decodes their ids, which RQ hands over decoded already."""
    job = Job.fetch(
        job_id, serializer=upstream.config.serializer, connection=current_app.redis_conn
    )
    latest_result = job.latest_result()
    encoder = current_app.config.get("RQ_DASHBOARD_JSON_ENCODER", json.JSONEncoder)
    info = {
        "id": job.id,
        "created_at": upstream.serialize_date(job.created_at),
        "enqueued_at": upstream.serialize_date(job.enqueued_at),
        "started_at": upstream.serialize_date(job.started_at),
        "ended_at": upstream.serialize_date(job.ended_at),
        "origin": job.origin,
        "status": job.get_status(),
        "result": job.return_value(),
        "exc_info": latest_result.exc_string if latest_result else None,
        "description": upstream.format_job_description(job),
        "metadata": json.dumps(job.get_meta(), cls=encoder),
    }
    dependency_ids = sorted(job.dependency_ids)
    if dependency_ids:
        info["depends_on"] = dependency_ids
        info["depends_on_status"] = [
            "active" if Job.exists(dependency, current_app.redis_conn) else "expired"
            for dependency in dependency_ids
        ]
    return info, NO_STORE


def list_queues(instance_number: int):
    """The dashboard's list of queues: the app's four, always, in the order the worker serves
    them. (Upstream lists only the queues Redis has seen a job on, so an empty ``urgent``
    queue would be missing.)"""
    queues = [get_queue(name) for name in QUEUE_NAMES]
    return {"queues": serialize_queues(instance_number, queues)}, NO_STORE


def list_workers(instance_number: int):
    """The dashboard's list of workers, which also works while a worker runs a job whose
    records RQ cannot read back (see ``blog.queue_admin.running_job``)."""
    workers = [
        {
            "name": worker.name,
            "pid": worker.pid,
            "queues": worker.queue_names(),
            "state": str(worker.get_state()),
            "current_job": upstream.serialize_current_job(running_job(worker)),
            "last_heartbeat": worker.last_heartbeat,
            "birth_date": worker.birth_date,
            "successful_job_count": worker.successful_job_count,
            "failed_job_count": worker.failed_job_count,
            "total_working_time": worker.total_working_time,
            "version": worker.version,
            "python_version": worker.python_version,
        }
        for worker in Worker.all(connection=current_app.redis_conn)
    ]
    workers.sort(key=lambda w: (w["state"], w["queues"], w["name"]))
    return {"workers": workers}, NO_STORE


def job_not_found(error: NoSuchJobError):
    return render_error(404, "There is no job with this id: it may have expired.")


def not_failed(error: InvalidJobOperation):
    return render_error(400, "Only a failed job can be requeued.")


def init_app(app: Flask) -> None:
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", [redis_label(app.config["REDIS_URL"])])
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    hooks = app.before_request_funcs[NAME]
    # Its own hook opens a new Redis client and pool per request, from a URL that has no
    # password (the one its header shows); ours comes first and hands it the app's client.
    hooks.remove(upstream.push_rq_connection)
    hooks.insert(0, before_dashboard_request)
    # Three of its views fail on what RQ does, and one lists too little; ours take their
    # place in this app only.
    app.view_functions[f"{NAME}.compact_queue"] = compact_queue
    app.view_functions[f"{NAME}.job_info"] = job_info
    app.view_functions[f"{NAME}.list_workers"] = list_workers
    app.view_functions[f"{NAME}.list_queues"] = list_queues
    for endpoint, view in list(app.view_functions.items()):
        if endpoint.startswith(f"{NAME}."):
            app.view_functions[endpoint] = with_dashboard_policy(view)
    app.register_error_handler(NoSuchJobError, job_not_found)
    app.register_error_handler(InvalidJobOperation, not_failed)
    # Its buttons post with jQuery and no form token. It is safe without one: only admins get
    # in, and blog.admin.security refuses any write that does not come from this site.
    csrf.exempt(rq_dashboard.blueprint)
