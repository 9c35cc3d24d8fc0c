"""Configuration, read from the environment only (twelve-factor).

Every process (``flask``, gunicorn, ``rq worker``, ``rq cron``) imports this module, and
gunicorn and rq never read ``.env`` themselves, so ``load_dotenv`` runs here, once, at import.
Variables already set in the environment win over ``.env``.
"""

import os
import secrets
from pathlib import Path
from typing import NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from dotenv import load_dotenv

load_dotenv()

ENVIRONMENTS = ("development", "production", "testing")


class ConfigError(RuntimeError):
    """The environment does not describe a configuration the app can run with."""


def number(environ, name: str, default: str, kind=int, low: float = 0, high: float | None = None):
    """The variable ``name`` as a number of ``kind`` between ``low`` and ``high``, or a
    ConfigError that names it."""
    raw = environ.get(name, default).strip()
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(
            f"{name} must be a{'n integer' if kind is int else ' number'}, not {raw!r}"
        ) from None
    if not (low <= value and (high is None or value <= high)):  # also refuses nan
        limits = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{name} must be {limits}, not {raw}")
    return value


def without_password(url: str) -> str:
    """``url`` fit for an error message or a log line: its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


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


DEV_REDIS_URL_FILE = "redis_url"

# Added to every Redis URL: notice a dropped connection before using it, and never hang a web
# request for long when Redis is unreachable or stops answering. (An rq worker raises the
# read timeout of its own connection above its blocking wait for jobs.)
REDIS_URL_OPTIONS = {
    "health_check_interval": "30",
    "socket_connect_timeout": "5",
    "socket_timeout": "5",
}


def redis_url(environ, instance_path: Path | None) -> str:
    """The Redis URL every process uses, with the connection options in its query string.

    Where it comes from, first match wins: ``REDIS_PROVIDER`` naming the variable that holds
    the URL (as PaaS add-ons do), ``REDIS_URL``, the URL of the Redis that ``make run`` started
    (kept in the instance folder while it runs), or a Redis on localhost.

    ``rediss://`` verifies the server's certificate unless ``REDIS_SSL_CERT_REQS=none``, which
    a PaaS Redis with a self-signed certificate (Heroku's) needs.
    """
    provider = environ.get("REDIS_PROVIDER", "").strip()
    if provider:
        url = environ.get(provider, "").strip()
        if not url:
            raise ConfigError(f"REDIS_PROVIDER names {provider}, but {provider} is not set")
    else:
        url = environ.get("REDIS_URL", "").strip()
    dev_file = instance_path / DEV_REDIS_URL_FILE if instance_path else None
    if not url and dev_file and dev_file.exists():
        url = dev_file.read_text().strip()
    url = url or "redis://127.0.0.1:6379/0"

    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(
            "REDIS_URL must start with redis://, rediss:// or unix://, "
            f"not {without_password(url)!r}"
        )
    options = dict(REDIS_URL_OPTIONS)
    cert_reqs = environ.get("REDIS_SSL_CERT_REQS", "").strip().lower()
    if parts.scheme == "rediss" and cert_reqs:
        if cert_reqs not in ("none", "optional", "required"):
            raise ConfigError("REDIS_SSL_CERT_REQS must be none, optional or required")
        options["ssl_cert_reqs"] = cert_reqs
        if cert_reqs == "none":
            options["ssl_check_hostname"] = "false"
    options.update(parse_qsl(parts.query))  # options written in the URL itself win
    return urlunsplit(parts._replace(query=urlencode(options)))


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


def tagging_mode(environ) -> str:
    mode = environ.get("TAGGING_MODE", "queue").strip().lower()
    if mode not in ("queue", "inline"):
        raise ConfigError(f"TAGGING_MODE must be queue or inline, not {mode!r}")
    return mode


def app_url(environ, env: str) -> str:
    """``APP_URL``, the site's public address, for the links in emails.

    A link in an email cannot come from the request's ``Host`` header: whoever sends the
    request chooses it, and could make the site mail a victim a link to another site.
    """
    url = environ.get("APP_URL", "").strip().rstrip("/")
    if url:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ConfigError(
                f"APP_URL must be like https://blog.example.com, not {without_password(url)!r}"
            )
        return url
    if env == "production":
        raise ConfigError("APP_URL must be set in production (e.g. https://blog.example.com)")
    return f"http://127.0.0.1:{environ.get('PORT', '5000')}"


class MailServer(NamedTuple):
    host: str
    port: int
    tls: str  # "implicit" (smtps://), "starttls" or "off"
    username: str
    password: str


def mail_server(url: str) -> MailServer:
    """The SMTP server that ``MAIL_URL`` names.

    ``smtps://user:password@host`` speaks TLS from the first byte (port 465 by default).
    ``smtp://user:password@host`` upgrades with STARTTLS (port 587) and refuses a server that
    cannot, so that neither the password nor the mail crosses the network in clear; add
    ``?tls=off`` for a mail catcher on this machine. The password is percent-encoded.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("smtp", "smtps") or not parts.hostname:
        raise ConfigError(
            f"MAIL_URL must be like smtp://user:password@host:587, not {without_password(url)!r}"
        )
    options = dict(parse_qsl(parts.query))
    if options not in ({}, {"tls": "off"}) or (options and parts.scheme == "smtps"):
        raise ConfigError("MAIL_URL takes one option, for smtp:// only: ?tls=off")
    tls = "starttls"
    if parts.scheme == "smtps":
        tls = "implicit"
    elif options:
        tls = "off"
    return MailServer(
        host=parts.hostname,
        port=parts.port or (465 if tls == "implicit" else 587),
        tls=tls,
        username=unquote(parts.username or ""),
        password=unquote(parts.password or ""),
    )


def mail_url(environ) -> str:
    """``MAIL_URL``, checked now so that a typo stops the app at start, not at the first email."""
    url = environ.get("MAIL_URL", "").strip()
    if url:
        mail_server(url)
    return url


DROP_MAIL = "drop"


def mail_reroute(environ) -> str:
    """``MAIL_REROUTE``: an address that gets every email instead of its recipient, or
    ``drop`` to send none. For a staging copy of the site, which may hold a copy of the
    production database and must never mail its real users."""
    value = environ.get("MAIL_REROUTE", "").strip()
    if value and value != DROP_MAIL:
        local, _, domain = value.rpartition("@")
        if not local or "." not in domain or any(c.isspace() or c in "<>,;" for c in value):
            raise ConfigError(
                f"MAIL_REROUTE must be one email address or {DROP_MAIL}, not {value!r}"
            )
    return value


def flag(environ, name: str) -> bool:
    """A yes/no variable: ``1``, ``true``, ``yes`` or ``on`` mean yes; unset means no."""
    return environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def engine_options(url: str, environ) -> dict:
    """Connection pool settings: bounded per process, and checked before use.

    A gunicorn worker serves one request at a time and a work-horse runs one job, so each
    needs one connection; the pool allows ``DATABASE_POOL_SIZE`` (2) and never more, which
    keeps the whole app inside a small plan's connection limit (docs/deploy.md does the sum).
    """
    if url.startswith("sqlite"):
        # Web and worker processes write at once: wait for the lock instead of failing.
        return {"connect_args": {"timeout": 15}}
    return {
        "pool_size": number(environ, "DATABASE_POOL_SIZE", "2", low=1),
        "max_overflow": number(environ, "DATABASE_MAX_OVERFLOW", "0"),
        # A connection the server or the network dropped is replaced before it is used.
        "pool_pre_ping": True,
        "pool_recycle": 300,
        # An unreachable database fails a request (and /healthz) in seconds, not minutes.
        "connect_args": {"connect_timeout": 5},
    }


def trusted_proxies(environ, env: str) -> int:
    """``TRUSTED_PROXIES``: how many proxies in front of the app add X-Forwarded-* headers.

    In production a platform's router sits in front (one proxy: Heroku's router, Dokku's
    nginx); the app takes the client's address and scheme from what it adds, and from no one
    else. Elsewhere nothing does, and a header a client sent itself must not be believed.
    """
    count = number(environ, "TRUSTED_PROXIES", "1" if env == "production" else "0")
    if count < 0:
        raise ConfigError("TRUSTED_PROXIES must be 0 or more")
    return count


def from_environment(instance_path: Path, environ=os.environ) -> dict:
    """Build the Flask config mapping from the environment."""
    instance_path.mkdir(parents=True, exist_ok=True)
    env = app_env(environ)
    db_url = database_url(environ, instance_path)
    production = env == "production"
    redis = redis_url(environ, instance_path)
    return {
        "APP_ENV": env,
        "SECRET_KEY": secret_key(environ, env, instance_path),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(db_url, environ),
        "REDIS_URL": redis,
        # "inline" runs the tagger inside the request, to feel what the queue saves the user.
        "TAGGING_MODE": tagging_mode(environ),
        "TAGGER_LATENCY": number(environ, "TAGGER_LATENCY", "1", float, high=60),
        "TAGGER_FAILURE_RATE": number(environ, "TAGGER_FAILURE_RATE", "0", float, high=1),
        "RETRY_BACKOFF_FACTOR": number(environ, "RETRY_BACKOFF_FACTOR", "1", float, high=100),
        # Work left pending this long (its enqueue was lost) is enqueued again.
        "STRANDED_AFTER_SECONDS": number(environ, "STRANDED_AFTER_SECONDS", "300"),
        "APP_URL": app_url(environ, env),
        # Without MAIL_URL, email stays in the outbox table: read it at /dev/mail.
        "MAIL_URL": mail_url(environ),
        # Staging: every email to this one address instead, or "drop" to send none.
        "MAIL_REROUTE": mail_reroute(environ),
        "MAIL_FROM": environ.get("MAIL_FROM", "Flask Background Jobs <noreply@localhost>"),
        # An attempt to send an email holds it this long; then another may take it over.
        "MAIL_CLAIM_LEASE_SECONDS": number(environ, "MAIL_CLAIM_LEASE_SECONDS", "180", low=1),
        # How long after signing up a user who has not posted gets a reminder.
        "SIGNUP_REMINDER_DELAY": number(environ, "SIGNUP_REMINDER_DELAY", str(24 * 3600)),
        # The mailbox at /dev/mail shows everyone's email to anyone: never in production.
        "DEV_MAILBOX": not production,
        # Signup sends email, so it is rate-limited per client address, counted in Redis.
        "SIGNUP_RATE_LIMIT": environ.get("SIGNUP_RATE_LIMIT", "5 per hour"),
        # Explicit: one Limiter serves every app in a process (the tests make many), and it
        # keeps an earlier app's RATELIMIT_ENABLED=False otherwise.
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_STORAGE_URI": redis,
        "RATELIMIT_KEY_PREFIX": "blog",
        "RATELIMIT_HEADERS_ENABLED": True,
        # Redis down: count in this process's memory meanwhile, rather than fail the signup.
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        # Without it behind a router, every client has the router's address (and shares one
        # rate limit), and every request looks like plain HTTP.
        "TRUSTED_PROXIES": trusted_proxies(environ, env),
        # Errors of the web process and of jobs go to Sentry when this is set.
        "SENTRY_DSN": environ.get("SENTRY_DSN", "").strip(),
        "LOG_LEVEL": environ.get("LOG_LEVEL", "INFO").strip().upper(),
        "PASSWORD_HASH_METHOD": "scrypt",
        "POSTS_PER_PAGE": number(environ, "POSTS_PER_PAGE", "10", low=1, high=100),
        # "1" turns off the RQ dashboard's Delete and Empty buttons (requeueing still works).
        "RQ_DASHBOARD_DISABLE_DELETE": flag(environ, "RQ_DASHBOARD_DISABLE_DELETE"),
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
