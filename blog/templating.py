"""Jinja filters the templates share."""

from datetime import datetime

from flask import Flask


def format_datetime(value: datetime | None, seconds: bool = False) -> str:
    return value.strftime(f"%-d %b %Y, %H:%M{':%S' if seconds else ''} UTC") if value else ""


def format_duration(seconds: float | None) -> str:
    """0.0004 → "400 µs", 0.0123 → "12.3 ms", 4.5 → "4.5 s", 300 → "5 min"; None → "–"."""
    if seconds is None:
        return "–"
    for limit, scale, unit in ((0.0009995, 1e-6, "µs"), (0.9995, 1e-3, "ms"), (59.95, 1, "s")):
        if seconds < limit:
            return f"{seconds / scale:.3g} {unit}"
    return f"{seconds / 60:.3g} min"


def format_percent(fraction: float | None) -> str:
    return "–" if fraction is None else f"{fraction:.1%}"


def init_app(app: Flask) -> None:
    app.add_template_filter(format_datetime, "datetime")
    app.add_template_filter(format_duration, "duration")
    app.add_template_filter(format_percent, "percent")
