"""Error pages in the site's layout, for the statuses a user can run into."""

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

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
    403: "You do not have permission to do that.",
    404: "There is nothing at this address.",
    413: "What you sent is larger than this site accepts.",
    429: "You have done that too often. Please try again later.",
    500: "The error has been logged. Please try again in a moment.",
}


def render_error(status: int, message: str | None = None):
    title = TITLES.get(status, "Error")
    message = message or EXPLANATIONS.get(status, "")
    return render_template("error.html", status=status, title=title, message=message), status


def handle_http_exception(error: HTTPException):
    if error.code is None or error.code < 400:
        return error
    return render_error(error.code)


def handle_csrf_error(error: CSRFError):
    return render_error(400, "The form expired or was sent from another site. Please try again.")


def init_app(app: Flask) -> None:
    app.register_error_handler(CSRFError, handle_csrf_error)
    # Unhandled exceptions reach this as InternalServerError, an HTTPException too.
    app.register_error_handler(HTTPException, handle_http_exception)
