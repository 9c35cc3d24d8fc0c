"""How long each request took, for the "don't keep the user waiting" lesson.

Every response carries a ``Server-Timing`` header (browsers' dev tools show it under Timing),
and pages show the figure in their footer, so a user sees seconds against milliseconds.
"""

from time import perf_counter

from flask import Flask, Response, g


def request_started() -> None:
    g.request_started = perf_counter()


def request_duration_ms() -> float:
    """Milliseconds since this request began (so far, when called while rendering)."""
    started = g.get("request_started")
    return (perf_counter() - started) * 1000 if started is not None else 0.0


def add_server_timing(response: Response) -> Response:
    response.headers["Server-Timing"] = f'app;dur={request_duration_ms():.1f};desc="Flask"'
    return response


def init_app(app: Flask) -> None:
    app.before_request(request_started)
    app.after_request(add_server_timing)
    app.add_template_global(request_duration_ms)
