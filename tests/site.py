"""Something at every URL of the app, for the tests that walk its whole URL map."""

import re

from flask import Flask

from blog import job_metrics
from blog.extensions import db
from blog.mail import welcome_email
from blog.queues import enqueue
from tests import factories
from workers.demo import demo

SAME_ORIGIN = {"Origin": "http://localhost"}  # what a browser sends with a POST from our page
ARGUMENT = re.compile(r"<(?:([a-z]+)(?:\([^)]*\))?:)?([a-z_]+)>")
# Pages that may not open with a URL a test made up: the files, and redirects elsewhere.
FILES = {"static": "site.css", "rq_dashboard.static": "js/jquery-3.5.1.min.js"}


def populate(app: Flask) -> dict:
    """A user, an admin with a tagged post, an email, a queued job and the metrics of a job
    that ran; the ids of each, as the URL map names them."""
    with app.app_context():
        ada = factories.user("ada@example.com")
        root = factories.user("root@example.com", admin=True)
        post = factories.post(root.id, tags=["deploys"])
        email = welcome_email(ada)
        db.session.add(email)
        db.session.commit()
        job = enqueue(demo, 0, "sample", job_id="sample-job")
        with app.extensions["redis"].pipeline() as pipe:
            job_metrics.add_execution(pipe, job.func_name, "default", False, 0.01, 0.01)
            pipe.execute()
        return {
            "users": {"user": ada.id, "admin": root.id},
            "post_id": post.id,
            "email_id": email.id,
            "tag_name": "deploys",
            "job_id": job.id,
            "instance_number": 0,
            "queue_name": "default",
            "registry_name": "queued",
            "per_page": 8,
            "order": "asc",
            "page": 1,
            "function_name": job.func_name,
        }


def fill(rule, values: dict) -> str:
    """``rule``'s URL with ``values`` put in as they are (quoted), right or wrong."""
    from urllib.parse import quote

    def value(match):
        name = match[2]
        if name == "filename":
            return FILES[rule.endpoint]
        raw = values[name]
        return quote(raw if isinstance(raw, bytes) else str(raw), safe="")

    return ARGUMENT.sub(value, rule.rule)


def sign_in(client, user_id: int | None) -> None:
    """Sign the client in as ``user_id`` (or out, for None), without a login request."""
    with client.session_transaction() as session:
        session.clear()
        if user_id is not None:
            session["_user_id"] = str(user_id)
            session["_fresh"] = True
