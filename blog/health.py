"""``/healthz``: can this web process reach the database and Redis?

For a platform's health check or an uptime monitor: 200 when both answer, 503 naming the
one that did not. It is cheap (``SELECT 1`` and ``PING``, each bounded by the connection
timeouts in ``blog.config``), open to anyone, and says nothing about what went wrong beyond
which service: the details go to the log.
"""

import logging

from flask import Blueprint, jsonify
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from blog.extensions import db
from blog.queues import redis_connection

bp = Blueprint("health", __name__)
log = logging.getLogger(__name__)


def database_answers() -> bool:
    try:
        db.session.execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("health check: the database did not answer: %s", error)
        return False
    return True


def redis_answers() -> bool:
    try:
        redis_connection().ping()
    except RedisError as error:
        log.warning("health check: Redis did not answer: %s", error)
        return False
    return True


@bp.get("/healthz")
def healthz():
    checks = {
        "database": "ok" if database_answers() else "failed",
        "redis": "ok" if redis_answers() else "failed",
    }
    healthy = all(result == "ok" for result in checks.values())
    return jsonify(status="ok" if healthy else "failed", **checks), 200 if healthy else 503
