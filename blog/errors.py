"""Error pages in the site's layout, for the statuses a user can run into.

An error page must not fail in turn: after a database error the session is rolled back
before the layout reads the signed-in user again, and a page that still cannot be rendered
is replaced by a minimal one that needs nothing.
"""

import logging
import math
import time

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from werkzeug.exceptions import HTTPException, InternalServerError

from blog.extensions import db, limiter

log = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    403: "Forbidden",
    404: "Page not found",
    405: "Method not allowed",
    413: "Too large",
    429: "Too many requests",
    500: "Something went wrong",
}

EXPLANATIONS = {
    400: "The address or the form holds something this site cannot read.",
    403: "You do not have permission to do that.",
    404: "There is nothing at this address.",
    413: "What you sent is larger than this site accepts.",
    500: "The error has been logged. Please try again in a moment.",
}


MINIMAL_PAGE = """<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>{status} · {title}</title>
<h1>{status} · {title}</h1>
<p>{message}</p>
<p><a href="/">Back to the posts</a></p>
</html>
"""


def render_error(status: int, message: str | None = None):
    title = TITLES.get(status, "Error")
    message = message or EXPLANATIONS.get(status, "")
    try:
        page = render_template("error.html", status=status, title=title, message=message)
    except Exception:  # anything at all: the user gets a page, the log gets the traceback
        log.exception("the %s page could not be rendered; sending the minimal one", status)
        page = MINIMAL_PAGE.format(status=status, title=escape(title), message=escape(message))
    return page, status


def handle_server_error(error: InternalServerError):
    """The 500 page. The layout reads the signed-in user, so a session left broken by a
    database error is rolled back first (with a dead connection, the pool opens a new one)."""
    try:
        db.session.rollback()
    except Exception:
        log.exception("rolling back after an error failed")
    return render_error(500)


def in_words(seconds: float) -> str:
    """How long to wait, rounded up so that trying again then works: "40 seconds",
    "2 minutes", "3 hours"."""
    if seconds <= 90:
        count, unit = math.ceil(seconds), "second"
    elif seconds <= 90 * 60:
        count, unit = math.ceil(seconds / 60), "minute"
    else:
        count, unit = math.ceil(seconds / 3600), "hour"
    count = max(count, 1)
    return f"{count} {unit}{'' if count == 1 else 's'}"


def try_again_message() -> str:
    """When the limit this request ran into lets the next one through, in words."""
    try:
        seconds = limiter.current_limit.reset_at - time.time()
    except Exception:  # no limit, or its storage gone: the page must still render
        return "You have done that too often. Please try again later."
    return f"You have done that too often. Please try again in {in_words(seconds)}."


def handle_http_exception(error: HTTPException):
    if error.code is None or error.code < 400:
        return error
    if error.code == 429:
        return render_error(429, try_again_message())
    return render_error(error.code)


def handle_csrf_error(error: CSRFError):
    return render_error(400, "The form expired or was sent from another site. Please try again.")


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(InternalServerError, handle_server_error)
    # Unhandled exceptions reach this as InternalServerError, an HTTPException too.
    app.register_error_handler(HTTPException, handle_http_exception)
