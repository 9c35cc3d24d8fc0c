"""Configuration, read from the environment only (twelve-factor).

``Settings`` names every variable the app reads, with its type, default and limits, and
pydantic-settings checks them all at once: a bad value stops the process at start, with an
error that names the variable. The functions below add the rules a type cannot state (the
``postgres://`` rewrite, ``REDIS_PROVIDER``, the development secret file, defaults that
depend on ``APP_ENV``), and ``from_environment`` builds the Flask config mapping.

Every process (``flask``, gunicorn, ``rq worker``, ``rq cron``) imports this module, and
gunicorn and rq never read ``.env`` themselves, so ``load_dotenv`` runs here, once, at import.
Variables already set in the environment win over ``.env``.
"""

import functools
import os
import secrets
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Literal, NamedTuple
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from annotated_types import Ge, Le
from dotenv import load_dotenv
from limits import parse_many
from pydantic import BeforeValidator, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from blog.job_modes import JOBS_MODES

load_dotenv()

ENVIRONMENTS = ("development", "production", "testing")
POSTS_PER_PAGE_MAX = 50


class ConfigError(RuntimeError):
    """The environment does not describe a configuration the app can run with."""


INSTANCE_PATH = Path(__file__).resolve().parent.parent / "instance"
# sysexits.h's EX_CONFIG: a supervisor can tell "the configuration is wrong, restarting will
# not help" from a crash.
EXIT_CONFIG_ERROR = 78


Lower = BeforeValidator(lambda value: value.strip().lower() if isinstance(value, str) else value)
Upper = BeforeValidator(lambda value: value.strip().upper() if isinstance(value, str) else value)


class Settings(BaseSettings):
    """Every environment variable the app reads. Unset or empty means the default."""

    model_config = SettingsConfigDict(
        case_sensitive=True, extra="ignore", str_strip_whitespace=True, frozen=True
    )

    # None: production on a Heroku dyno (DYNO is set), else development.
    APP_ENV: Annotated[Literal[ENVIRONMENTS] | None, Lower] = None
    DYNO: str = ""
    SECRET_KEY: str = ""
    PORT: int = Field(5000, ge=1, le=65535)
    APP_URL: str = ""
    DATABASE_URL: str = ""
    DATABASE_POOL_SIZE: int = Field(2, ge=1, le=100)
    DATABASE_MAX_OVERFLOW: int = Field(0, ge=0, le=100)
    REDIS_URL: str = ""
    REDIS_PROVIDER: str = ""
    REDIS_SSL_CERT_REQS: Annotated[Literal["none", "optional", "required"] | None, Lower] = None
    # None: 1 in production (the platform's router), else 0.
    TRUSTED_PROXIES: int | None = Field(None, ge=0, le=10)
    JOBS_MODE: Annotated[Literal[JOBS_MODES], Lower] = "redis"
    TAGGING_MODE: Annotated[Literal["queue", "inline"], Lower] = "queue"
    TAGGER_LATENCY: float = Field(1.0, ge=0, le=60)
    TAGGER_FAILURE_RATE: float = Field(0.0, ge=0, le=1)
    RETRY_BACKOFF_FACTOR: float = Field(1.0, ge=0, le=100)
    STRANDED_AFTER_SECONDS: int = Field(300, ge=0)
    MAIL_URL: str = ""
    MAIL_FROM: str = "Flask Background Jobs <noreply@localhost>"
    MAIL_REROUTE: str = ""
    # Seconds the development mailbox takes to "deliver" each email, as a slow mail server
    # would; under the sending job's 60 s timeout.
    MAIL_LATENCY: float = Field(0.0, ge=0, le=30)
    MAIL_CLAIM_LEASE_SECONDS: int = Field(180, ge=1)
    SIGNUP_REMINDER_DELAY: int = Field(24 * 3600, ge=0)
    SIGNUP_RATE_LIMIT: str = "5 per hour"
    LOGIN_RATE_LIMIT_PER_ADDRESS: str = "30 per hour"
    LOGIN_RATE_LIMIT_PER_ACCOUNT: str = "10 per hour"
    POSTS_PER_PAGE: int = Field(10, ge=1, le=POSTS_PER_PAGE_MAX)
    # Seconds a web process may send again a front page it made for visitors who are not
    # signed in, while no post changed (blog.page_cache); 0: make it for every visit.
    PAGE_CACHE_SECONDS: int = Field(30, ge=0, le=3600)
    # The dead-job cap (Sidekiq's dead_max_jobs and dead_timeout_in_seconds): failed jobs
    # kept at most, and for at most this many days (blog.dead_jobs).
    DEAD_JOBS_MAX: int = Field(10_000, ge=1, le=10_000_000)
    DEAD_JOBS_MAX_AGE: int = Field(180, ge=1, le=3650)
    # Throttles (blog.throttle): the mailers queue's rate, and any queue's or job function's.
    MAIL_RATE_LIMIT: str = ""
    JOB_RATE_LIMITS: str = ""
    RQ_DASHBOARD_DISABLE_DELETE: bool = False
    SENTRY_DSN: str = ""
    # Unset: /metrics is for admins only; see ``metrics_token``.
    METRICS_TOKEN: str = ""
    # The release a process runs, for the deploy marks of the metrics page: what the platform
    # sets (Heroku's dyno metadata) or a deploy script does (RELEASE); see ``release``.
    HEROKU_RELEASE_VERSION: str = ""
    HEROKU_SLUG_COMMIT: str = ""
    RELEASE: str = ""
    LOG_LEVEL: Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR"], Upper] = "INFO"
    # One JSON object per line, for a platform's log search (blog.logs); text otherwise.
    LOG_FORMAT: Annotated[Literal["text", "json"], Lower] = "text"
    # Tracing (blog.tracing): off unless set; the SDK reads the other OTEL_* variables itself.
    OTEL_EXPORTER_OTLP_ENDPOINT: str = ""
    OTEL_SERVICE_NAME: str = "flask-background-jobs"
    WEB_CONCURRENCY: int = Field(2, ge=1, le=64)
    # Requests each gunicorn worker process serves at once, one thread each (1: gunicorn's
    # sync worker; more: its gthread worker). gunicorn.conf.py says how to choose.
    WEB_THREADS: int = Field(1, ge=1, le=32)
    # How the worker runs its jobs: the README's "The worker" says how to choose.
    WORKER_MODE: Annotated[Literal["threads", "fork"], Lower] = "threads"
    WORKER_CONCURRENCY: int = Field(5, ge=1, le=500)
    WORKER_PROCESSES: int = Field(2, ge=1, le=64)
    # MB; a threads-mode worker process above it is replaced (0: never).
    WORKER_MEMORY_LIMIT: int = Field(384, ge=0)
    # A platform kills a process 30 s after SIGTERM: the jobs' grace, and the few seconds an
    # interrupted job gets to stop, must end before that.
    WORKER_SHUTDOWN_GRACE: float = Field(20, ge=0, le=20)
    # Seconds between a worker's signs of life; four missed and its jobs are recovered.
    WORKER_HEARTBEAT: float = Field(5, ge=0.5, le=60)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **other_sources):
        # Only what ``read_settings`` passes in: tests hand it a mapping of their own, and
        # the processes os.environ (with .env loaded into it above).
        return (init_settings,)


METRICS_TOKEN_MIN_LENGTH = 16


def metrics_token(settings: Settings) -> str:
    """``METRICS_TOKEN``, checked: a password, so long enough not to be guessed (and never
    shown in the error, unlike other values)."""
    token = settings.METRICS_TOKEN
    if token and len(token) < METRICS_TOKEN_MIN_LENGTH:
        raise ConfigError(
            f"METRICS_TOKEN must be at least {METRICS_TOKEN_MIN_LENGTH} characters "
            "(e.g. `openssl rand -hex 32`)"
        )
    return token


def otlp_endpoint(url: str) -> str:
    """``OTEL_EXPORTER_OTLP_ENDPOINT``: an http(s) URL (the OTLP/HTTP exporter's, which adds
    ``/v1/traces``), or empty for no tracing."""
    parts = urlsplit(url)
    if url and (parts.scheme not in ("http", "https") or not parts.netloc):
        raise ConfigError(
            "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL (OTLP over HTTP, "
            f"e.g. http://127.0.0.1:4318), not {without_password(url)!r}"
        )
    return url


def release(environ: Mapping[str, str] = os.environ) -> str | None:
    """The release this process runs: ``HEROKU_RELEASE_VERSION``, ``HEROKU_SLUG_COMMIT`` or
    ``RELEASE``, the first that is set; else, in a git checkout, its commit; else None."""
    settings = read_settings(environ)
    for value in (settings.HEROKU_RELEASE_VERSION, settings.HEROKU_SLUG_COMMIT, settings.RELEASE):
        if value:
            return value
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=INSTANCE_PATH.parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):  # no git, or not a checkout
        return None
    return found.stdout.strip() or None


def read_settings(environ: Mapping[str, str] = os.environ) -> Settings:
    """The variables of ``environ`` that the app reads, checked; or a ConfigError naming each
    bad one."""
    values = {
        name: value
        for name, value in environ.items()
        if name in Settings.model_fields and value.strip()
    }
    try:
        return Settings(**values)
    except ValidationError as error:
        raise ConfigError("; ".join(_describe(problem) for problem in error.errors())) from None


def _describe(problem: dict) -> str:
    """One line for one bad variable: its name, what it must be, what it is."""
    name = problem["loc"][0]
    value = problem["input"]
    shown = repr(without_password(str(value)))  # a URL set by mistake keeps its password
    kind = problem["type"]
    if kind in ("greater_than_equal", "less_than_equal"):
        metadata = Settings.model_fields[name].metadata
        low = next((_number(m.ge) for m in metadata if isinstance(m, Ge)), None)
        high = next((_number(m.le) for m in metadata if isinstance(m, Le)), None)
        must = f"be between {low} and {high}" if high is not None else f"be at least {low}"
    elif kind == "int_parsing":
        must = "be an integer"
    elif kind == "float_parsing":
        must = "be a number"
    elif kind == "bool_parsing":
        must = "be 1, true, yes or on, or 0, false, no or off"
    elif kind == "literal_error":
        must = f"be one of {problem['ctx']['expected']}"
    else:
        must = f"be valid ({problem['msg']})"
    return f"{name} must {must}, not {shown}"


def _number(limit: float) -> str:
    """A limit as written in ``Settings``: 10000000, not 1e+07; 0.5 as 0.5."""
    return str(limit) if isinstance(limit, int) else f"{limit:g}"


def without_password(url: str) -> str:
    """``url`` fit for an error message or a log line: its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def environment(settings: Settings) -> str:
    """``APP_ENV``; on a Heroku dyno (``DYNO`` is set) the default is production."""
    return settings.APP_ENV or ("production" if settings.DYNO else "development")


def app_env(environ: Mapping[str, str] = os.environ) -> str:
    """``APP_ENV``: development, production or testing."""
    return environment(read_settings(environ))


def database_url(environ: Mapping[str, str], instance_path: Path | None) -> str:
    """``DATABASE_URL``, or a SQLite file in the instance folder so nothing needs installing.

    Heroku and others hand out ``postgres://`` URLs, a scheme SQLAlchemy rejects; and for a
    plain ``postgresql://`` SQLAlchemy 2.1 picks psycopg 3, while this app ships psycopg2.
    """
    url = read_settings(environ).DATABASE_URL
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


def redis_url(environ: Mapping[str, str], instance_path: Path | None) -> str:
    """The Redis URL every process uses, with the connection options in its query string.

    Where it comes from, first match wins: ``REDIS_PROVIDER`` naming the variable that holds
    the URL (as PaaS add-ons do), ``REDIS_URL``, the URL of the Redis that ``make run`` started
    (kept in the instance folder while it runs), or a Redis on localhost.

    ``rediss://`` verifies the server's certificate unless ``REDIS_SSL_CERT_REQS=none``, which
    a PaaS Redis with a self-signed certificate (Heroku's) needs.
    """
    settings = read_settings(environ)
    provider = settings.REDIS_PROVIDER
    if provider:
        url = environ.get(provider, "").strip()
        if not url:
            raise ConfigError(f"REDIS_PROVIDER names {provider}, but {provider} is not set")
    else:
        url = settings.REDIS_URL
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
    cert_reqs = settings.REDIS_SSL_CERT_REQS
    if parts.scheme == "rediss" and cert_reqs:
        options["ssl_cert_reqs"] = cert_reqs
        if cert_reqs == "none":
            options["ssl_check_hostname"] = "false"
    options.update(parse_qsl(parts.query))  # options written in the URL itself win
    return urlunsplit(parts._replace(query=urlencode(options)))


def secret_key(settings: Settings, env: str, instance_path: Path) -> str:
    """``SECRET_KEY``; in development one is generated once and kept in the instance folder."""
    if settings.SECRET_KEY:
        return settings.SECRET_KEY
    if env == "testing":
        return "not-a-secret-testing-only"
    if env == "production":
        raise ConfigError("SECRET_KEY must be set in production (e.g. `openssl rand -hex 32`)")
    key_file = instance_path / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_hex(32))
        key_file.chmod(0o600)
    return key_file.read_text().strip()


def app_url(settings: Settings, env: str) -> str:
    """``APP_URL``, the site's public address, for the links in emails.

    A link in an email cannot come from the request's ``Host`` header: whoever sends the
    request chooses it, and could make the site mail a victim a link to another site.
    """
    url = settings.APP_URL.rstrip("/")
    if url:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ConfigError(
                f"APP_URL must be like https://blog.example.com, not {without_password(url)!r}"
            )
        return url
    if env == "production":
        raise ConfigError("APP_URL must be set in production (e.g. https://blog.example.com)")
    return f"http://127.0.0.1:{settings.PORT}"


class MailServer(NamedTuple):
    host: str
    port: int
    tls: str  # "implicit" (smtps://), "starttls" or "off"
    username: str
    password: str


@functools.lru_cache(maxsize=8)
def mail_server(url: str) -> MailServer:
    """The SMTP server that ``MAIL_URL`` names (parsed once per URL, then remembered).

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


DROP_MAIL = "drop"


def mail_reroute(value: str) -> str:
    """``MAIL_REROUTE``: an address that gets every email instead of its recipient, or
    ``drop`` to send none. For a staging copy of the site, which may hold a copy of the
    production database and must never mail its real users."""
    if value and value != DROP_MAIL:
        local, _, domain = value.rpartition("@")
        if not local or "." not in domain or any(c.isspace() or c in "<>,;" for c in value):
            raise ConfigError(
                f"MAIL_REROUTE must be one email address or {DROP_MAIL}, not {value!r}"
            )
    return value


def rate_limit(name: str, value: str) -> str:
    """A rate limit such as ``5 per hour`` or ``10/minute; 50/day``, checked now."""
    try:
        parse_many(value)
    except ValueError:
        raise ConfigError(
            f"{name} must be like '5 per hour' or '10/minute; 50/day', not {value!r}"
        ) from None
    return value


def job_rate_limits(settings: Settings) -> dict:
    """The throttles, by queue or job function: ``JOB_RATE_LIMITS``, and ``MAIL_RATE_LIMIT``
    for the ``mailers`` queue (its jobs send one email each)."""
    from blog.queues import QUEUE_NAMES  # here: blog.queues is heavier than this module
    from blog.throttle import ThrottleError, parse_rate, parse_throttles

    try:
        throttles = parse_throttles(settings.JOB_RATE_LIMITS, QUEUE_NAMES)
    except ThrottleError as error:
        raise ConfigError(
            f"JOB_RATE_LIMITS must be like 'mailers=10/second; "
            f"workers.tagging.auto_tag_post=600/minute': {error}"
        ) from None
    if settings.MAIL_RATE_LIMIT:
        try:
            throttles["mailers"] = parse_rate("mailers", settings.MAIL_RATE_LIMIT)
        except ThrottleError as error:
            raise ConfigError(f"MAIL_RATE_LIMIT must be like 10/second: {error}") from None
    return throttles


def sentry_dsn(dsn: str) -> str:
    """``SENTRY_DSN``, checked now: Sentry would refuse a wrong one when the app starts."""
    if dsn:
        from sentry_sdk.utils import BadDsn, Dsn  # only when used, as in blog.error_reporting

        try:
            Dsn(dsn)
        except BadDsn as error:
            raise ConfigError(
                f"SENTRY_DSN must be the DSN Sentry shows for the project ({error})"
            ) from None
    return dsn


def engine_options(url: str, environ: Mapping[str, str]) -> dict:
    """Connection pool settings: bounded per process, and checked before use.

    A gunicorn worker serves one request at a time, so it needs one connection; the pool
    allows ``DATABASE_POOL_SIZE`` (2) and never more (a worker process raises it to one per
    job thread), which keeps the whole app inside a small plan's connection limit
    (docs/deploy.md does the sum).
    """
    if url.startswith("sqlite"):
        # Web and worker processes write at once: wait for the lock instead of failing.
        return {"connect_args": {"timeout": 15}}
    settings = read_settings(environ)
    return {
        "pool_size": settings.DATABASE_POOL_SIZE,
        "max_overflow": settings.DATABASE_MAX_OVERFLOW,
        # A connection the server or the network dropped is replaced before it is used.
        "pool_pre_ping": True,
        "pool_recycle": 300,
        # An unreachable database fails a request (and /healthz) in seconds, not minutes.
        "connect_args": {"connect_timeout": 5},
    }


WORKER_SETTINGS = (
    "WORKER_MODE",
    "WORKER_CONCURRENCY",
    "WORKER_PROCESSES",
    "WORKER_MEMORY_LIMIT",
    "WORKER_SHUTDOWN_GRACE",
    "WORKER_HEARTBEAT",
)


def worker_settings(environ: Mapping[str, str] = os.environ) -> dict:
    """The settings of ``python -m workers`` (``workers/supervisor.py``)."""
    settings = read_settings(environ)
    return {name: getattr(settings, name) for name in WORKER_SETTINGS}


def from_environment(instance_path: Path, environ: Mapping[str, str] = os.environ) -> dict:
    """Build the Flask config mapping from the environment."""
    instance_path.mkdir(parents=True, exist_ok=True)
    settings = read_settings(environ)
    env = environment(settings)
    production = env == "production"
    db_url = database_url(environ, instance_path)
    redis = redis_url(environ, instance_path)
    if settings.MAIL_URL:
        mail_server(settings.MAIL_URL)  # a typo stops the app at start, not at the first email
    return {
        "APP_ENV": env,
        "SECRET_KEY": secret_key(settings, env, instance_path),
        "SQLALCHEMY_DATABASE_URI": db_url,
        "SQLALCHEMY_ENGINE_OPTIONS": engine_options(db_url, environ),
        "REDIS_URL": redis,
        # Where jobs go: Redis, or, for tests and development, run inline or recorded (fake).
        "JOBS_MODE": settings.JOBS_MODE,
        # "inline" runs the tagger inside the request, to feel what the queue saves the user.
        "TAGGING_MODE": settings.TAGGING_MODE,
        "TAGGER_LATENCY": settings.TAGGER_LATENCY,
        "TAGGER_FAILURE_RATE": settings.TAGGER_FAILURE_RATE,
        "RETRY_BACKOFF_FACTOR": settings.RETRY_BACKOFF_FACTOR,
        # Work left pending this long (its enqueue was lost) is enqueued again.
        "STRANDED_AFTER_SECONDS": settings.STRANDED_AFTER_SECONDS,
        "APP_URL": app_url(settings, env),
        # Without MAIL_URL, email stays in the outbox table: read it at /dev/mail.
        "MAIL_URL": settings.MAIL_URL,
        # Staging: every email to this one address instead, or "drop" to send none.
        "MAIL_REROUTE": mail_reroute(settings.MAIL_REROUTE),
        "MAIL_FROM": settings.MAIL_FROM,
        # Without MAIL_URL, each delivery waits this long: the lesson's slow mail server.
        "MAIL_LATENCY": settings.MAIL_LATENCY,
        # Prometheus sends it as a bearer token to scrape /metrics (blog.prometheus).
        "METRICS_TOKEN": metrics_token(settings),
        # An attempt to send an email holds it this long; then another may take it over.
        "MAIL_CLAIM_LEASE_SECONDS": settings.MAIL_CLAIM_LEASE_SECONDS,
        # How long after signing up a user who has not posted gets a reminder.
        "SIGNUP_REMINDER_DELAY": settings.SIGNUP_REMINDER_DELAY,
        # The mailbox at /dev/mail shows everyone's email to anyone: never in production.
        "DEV_MAILBOX": not production,
        # Signup sends email, so it is rate-limited per client address, counted in Redis.
        "SIGNUP_RATE_LIMIT": rate_limit("SIGNUP_RATE_LIMIT", settings.SIGNUP_RATE_LIMIT),
        # Failed logins, counted in Redis: see blog.auth.throttle for how the two fit together.
        "LOGIN_RATE_LIMIT_PER_ADDRESS": rate_limit(
            "LOGIN_RATE_LIMIT_PER_ADDRESS", settings.LOGIN_RATE_LIMIT_PER_ADDRESS
        ),
        "LOGIN_RATE_LIMIT_PER_ACCOUNT": rate_limit(
            "LOGIN_RATE_LIMIT_PER_ACCOUNT", settings.LOGIN_RATE_LIMIT_PER_ACCOUNT
        ),
        # Explicit: one Limiter serves every app in a process (the tests make many), and it
        # keeps an earlier app's RATELIMIT_ENABLED=False otherwise.
        "RATELIMIT_ENABLED": True,
        "RATELIMIT_STORAGE_URI": redis,
        "RATELIMIT_KEY_PREFIX": "blog",
        "RATELIMIT_HEADERS_ENABLED": True,
        # Redis down: count in this process's memory meanwhile, rather than fail the signup.
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        # Behind a platform's router, believe its X-Forwarded-For and -Proto, and no one
        # else's: without it every client has the router's address (and shares one rate
        # limit), and every request looks like plain HTTP.
        "TRUSTED_PROXIES": (
            settings.TRUSTED_PROXIES
            if settings.TRUSTED_PROXIES is not None
            else (1 if production else 0)
        ),
        # At most so many job starts a period, per queue or job function (blog.throttle).
        "JOB_RATE_LIMITS": job_rate_limits(settings),
        # Errors of the web process and of jobs go to Sentry when this is set.
        "SENTRY_DSN": sentry_dsn(settings.SENTRY_DSN),
        "LOG_LEVEL": settings.LOG_LEVEL,
        "LOG_FORMAT": settings.LOG_FORMAT,
        # Spans go to this OpenTelemetry collector when set (blog.tracing).
        "OTEL_EXPORTER_OTLP_ENDPOINT": otlp_endpoint(settings.OTEL_EXPORTER_OTLP_ENDPOINT),
        "OTEL_SERVICE_NAME": settings.OTEL_SERVICE_NAME,
        "PASSWORD_HASH_METHOD": "scrypt",
        "POSTS_PER_PAGE": settings.POSTS_PER_PAGE,
        # The front page for visitors not signed in is made once per change (blog.page_cache).
        "PAGE_CACHE_SECONDS": settings.PAGE_CACHE_SECONDS,
        # Failed jobs kept at most, and for at most this many days (blog.dead_jobs).
        "DEAD_JOBS_MAX": settings.DEAD_JOBS_MAX,
        "DEAD_JOBS_MAX_AGE": settings.DEAD_JOBS_MAX_AGE,
        # "1" turns off the RQ dashboard's Delete and Empty buttons (requeueing still works).
        "RQ_DASHBOARD_DISABLE_DELETE": settings.RQ_DASHBOARD_DISABLE_DELETE,
        # A request body larger than this gets a 413 page before any form parsing.
        "MAX_CONTENT_LENGTH": 1024 * 1024,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": production,
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": production,
        "PREFERRED_URL_SCHEME": "https" if production else "http",
        **{name: getattr(settings, name) for name in WORKER_SETTINGS},
    }


def check_or_exit(
    process: str, environ: Mapping[str, str] = os.environ, instance_path: Path = INSTANCE_PATH
) -> dict:
    """The configuration, or exit with one line that names the bad variable.

    Every process calls this first thing (``gunicorn.conf.py`` and ``app.py`` for the web
    process and ``flask`` commands, ``workers/clock.py`` for the clock, ``workers/supervisor.py``
    for the worker), so that a wrong setting stops it at once with ``<process>: SECRET_KEY must
    be set ...`` on stderr and status ``EXIT_CONFIG_ERROR``, instead of a traceback or a process
    that fails later.
    """
    try:
        return from_environment(instance_path, environ)
    except ConfigError as error:
        print(f"{process}: {error}", file=sys.stderr, flush=True)
        raise SystemExit(EXIT_CONFIG_ERROR) from None
