"""Jinja filters the templates share."""

from datetime import datetime

from flask import Flask


def format_datetime(value: datetime | None) -> str:
    return value.strftime("%-d %b %Y, %H:%M UTC") if value else ""


def init_app(app: Flask) -> None:
    app.add_template_filter(format_datetime, "datetime")
