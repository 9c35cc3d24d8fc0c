"""Configuration, read from the environment only (twelve-factor).

Every process (``flask``, gunicorn, ``rq worker``, ``rq cron``) imports this module, and
gunicorn and rq never read ``.env`` themselves, so ``load_dotenv`` runs here, once, at import.
Variables already set in the environment win over ``.env``.
"""

import os
import secrets
from pathlib import Path

from dotenv import load_dotenv

load_dotenv()

ENVIRONMENTS = ("development", "production", "testing")


class ConfigError(RuntimeError):
    """The environment does not describe a configuration the app can run with."""


def app_env(environ=os.environ) -> str:
    """``APP_ENV``; on a Heroku dyno (``DYNO`` is set) the default is production."""
    default = "production" if "DYNO" in environ else "development"
    env = environ.get("APP_ENV", default).strip().lower()
    if env not in ENVIRONMENTS:
        raise ConfigError(f"APP_ENV must be one of {', '.join(ENVIRONMENTS)}, not {env!r}")
    return env


def database_url(environ, instance_path: Path) -> str:
    """``DATABASE_URL``, or a SQLite file in the instance folder so nothing needs installing.

    Heroku and others hand out ``postgres://`` URLs, a scheme SQLAlchemy rejects; and for a
    plain ``postgresql://`` SQLAlchemy 2.1 picks psycopg 3, while this app ships psycopg2.
    """
    url = environ.get("DATABASE_URL", "").strip()
    if not url:
        return f"sqlite:///{instance_path / 'blog.sqlite3'}"
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg2://" + url.removeprefix(scheme)
    return url


def secret_key(environ, env: str, instance_path: Path) -> str:
    """``SECRET_KEY``; in development one is generated once and kept in the instance folder."""
    key = environ.get("SECRET_KEY", "").strip()
    if key:
        return key
    if env == "testing":
        return "not-a-secret-testing-only"
    if env == "production":
        raise ConfigError("SECRET_KEY must be set in production (e.g. `openssl rand -hex 32`)")
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def engine_options(url: str, environ) -> dict:
    """Connection pool settings: bounded per process, and checked before use."""
    if url.startswith("sqlite"):
        # Web and worker processes write at once: wait for the lock instead of failing.
        return {"connect_args": {"timeout": 15}}
    return {
        "pool_size": int(environ.get("DATABASE_POOL_SIZE", "5")),
        "max_overflow": int(environ.get("DATABASE_MAX_OVERFLOW", "0")),
        "pool_pre_ping": True,
        "pool_recycle": 300,
    }


def from_environment(instance_path: Path, environ=os.environ) -> dict:
    """Build the Flask config mapping from the environment."""
    instance_path.mkdir(parents=True, exist_ok=True)
    env = app_env(environ)
    db_url = database_url(environ, instance_path)
    production = env == "production"
    return {
        "APP_ENV": env,
        "SECRET_KEY": secret_key(environ, env, instance_path),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(db_url, environ),
        "PASSWORD_HASH_METHOD": "scrypt",
        "POSTS_PER_PAGE": int(environ.get("POSTS_PER_PAGE", "10")),
        # A request body larger than this gets a 413 page before any form parsing.
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production,
        "PREFERRED_URL_SCHEME": "https" if production else "http",
    }
