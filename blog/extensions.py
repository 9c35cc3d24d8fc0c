"""Flask extensions, created unbound so that job code can import ``db`` without an app."""

import sqlite3

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import Engine, MetaData, event
from sqlalchemy.orm import DeclarativeBase

# Named constraints, so that migrations can alter them on every database (SQLite included).
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
# Any fixed number: the key of the PostgreSQL advisory lock that migrations run under
# (migrations/env.py), so that two processes never migrate at once.
MIGRATION_LOCK_KEY = 7_301_951
login_manager = LoginManager()
csrf = CSRFProtect()
# Counts per client address; behind a proxy that is right only with TRUSTED_PROXIES set.
limiter = Limiter(get_remote_address)


@event.listens_for(Engine, "connect")
def _configure_sqlite(dbapi_connection, connection_record):
    """WAL lets the worker write while the web process reads; SQLite needs FKs switched on.
    With WAL, ``synchronous=NORMAL`` syncs at checkpoints rather than at every commit: a
    crash of the app loses nothing, a power cut may lose the last commits (SQLite's own advice
    for WAL, and SQLite is the development database here)."""
    if isinstance(dbapi_connection, sqlite3.Connection):
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=15000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()
