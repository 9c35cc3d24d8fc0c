"""rq-dashboard, mounted at ``/admin/rq`` on the app's own Redis connection.

``rq_dashboard.blueprint`` is one object for the whole process, and Flask refuses new hooks on
a blueprint once it has been registered. So everything here is set on the app being built,
never on the blueprint, and a second app (every test makes one) gets the same treatment.

Who may reach it, and from where, is decided for all of ``/admin`` in ``blog.admin.security``.
Its templates that show job data are overridden in ``templates/rq_dashboard/`` so that they
escape it: see the note at the top of each.
"""

from urllib.parse import urlsplit, urlunsplit

import rq_dashboard
from flask import Flask, Response, abort, current_app, request
from rq.exceptions import NoSuchJobError
from rq_dashboard.web import serialize_queues

from blog.admin.security import csp_nonce
from blog.config import without_password
from blog.errors import render_error
from blog.extensions import csrf
from blog.queues import QUEUE_NAMES, get_queue, redis_connection

URL_PREFIX = "/admin/rq"
NAME = rq_dashboard.blueprint.name
REGISTRY_NAMES = ("queued", "failed", "deferred", "started", "finished", "scheduled", "canceled")


def redis_label(url: str) -> str:
    """The Redis URL as the dashboard's header shows it: password hidden, no query string."""
    return urlunsplit(urlsplit(without_password(url))._replace(query=""))


def before_dashboard_request():
    """Hand the dashboard the app's Redis client, and refuse what it would mishandle.

    The dashboard's own hook, replaced by this one, opens a new client and pool per request.
    """
    current_app.redis_conn = redis_connection()
    args = request.view_args or {}
    if args.get("instance_number", 0) != 0:
        abort(404)  # the app has one Redis; the dashboard would fail on another number
    if args.get("queue_name") not in (None, *QUEUE_NAMES):
        abort(404)  # also keeps made-up names out of its pages and out of Redis
    if args.get("registry_name") not in (None, *REGISTRY_NAMES):
        abort(404)
    if not all(str(args.get(key, "1")).isdigit() for key in ("per_page", "page")):
        abort(404)  # it would fail on int("abc") with a 500
    if request.endpoint == f"{NAME}.requeue_all" and request.method != "POST":
        abort(405)  # a link or <img> on any site can send a GET


def dashboard_policy(response: Response) -> Response:
    """The dashboard needs ``'unsafe-eval'``: its templates are compiled in the browser with
    Underscore's ``_.template``. Its one inline script carries this response's nonce."""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; script-src 'self' 'nonce-{csp_nonce()}' 'unsafe-eval'; "
        "style-src 'self' 'unsafe-inline'; img-src 'self' data:; object-src 'none'; "
        "base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
    )
    return response


def list_queues(instance_number: int):
    """The dashboard's list of queues: the app's four, always, in the order the worker serves
    them. (Upstream lists only the queues Redis has seen a job on, so an empty ``urgent``
    queue would be missing.)"""
    queues = [get_queue(name) for name in QUEUE_NAMES]
    return {"queues": serialize_queues(instance_number, queues)}, {"Cache-Control": "no-store"}


def job_not_found(error: NoSuchJobError):
    return render_error(404, "There is no job with this id: it may have expired.")


def init_app(app: Flask) -> None:
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", [redis_label(app.config["REDIS_URL"])])
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    app.view_functions[f"{NAME}.list_queues"] = list_queues
    app.before_request_funcs[NAME] = [before_dashboard_request]
    app.after_request_funcs.setdefault(NAME, []).append(dashboard_policy)
    app.register_error_handler(NoSuchJobError, job_not_found)
    # Its buttons post with jQuery and no form token. It is safe without one: only admins get
    # in, and blog.admin.security refuses any write that does not come from this site.
    csrf.exempt(rq_dashboard.blueprint)
