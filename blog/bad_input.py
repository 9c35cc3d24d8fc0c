"""Input the database cannot take is refused before it gets there, with a 404 or a 400.

A URL or a form can carry anything: ``/posts/99999999999999999999`` (SQLite cannot bind an
integer that large, PostgreSQL answers "out of range"), ``?page=-3`` or a NUL character
(PostgreSQL refuses it in text). Each would reach the database and come back as a 500.
"""

from flask import Flask, abort, request
from werkzeug.routing import IntegerConverter

# The largest value of an INTEGER column on PostgreSQL (ids are INTEGER); SQLite takes more.
ID_MAX = 2**31 - 1
NUL = "\x00"


class IdConverter(IntegerConverter):
    """``<int:...>`` in every URL rule, ours and rq-dashboard's: 0 to ``ID_MAX``, else 404."""

    def __init__(self, map, fixed_digits=0, min=None, max=ID_MAX, signed=False):
        super().__init__(map, fixed_digits, min, max, signed)


def page_number() -> int:
    """``?page=``, 1 when absent; a 404 unless it is a whole number from 1 to ``ID_MAX``."""
    raw = request.args.get("page", "1")
    if not (raw.isascii() and raw.isdigit() and 1 <= int(raw) <= ID_MAX):
        abort(404)
    return int(raw)


def refuse_nul_characters():
    """A 400 for a NUL in the path, the query string or a form field.

    No one types one; PostgreSQL cannot store one (SQLite can, and would hand it on).
    """
    values = [request.path]
    for data in (request.args, request.form):
        for key, items in data.lists():
            values.append(key)
            values.extend(items)
    if any(NUL in value for value in values):
        abort(400)


def init_app(app: Flask) -> None:
    """Call before any URL rule is added: a rule picks its converter when it is added."""
    app.url_map.converters["int"] = IdConverter
    app.before_request(refuse_nul_characters)
