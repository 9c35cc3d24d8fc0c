"""gunicorn's settings, read from the environment as a platform sets it.

``PORT`` is the port to listen on, ``WEB_CONCURRENCY`` the number of worker processes and
``WEB_THREADS`` the requests each serves at once (one thread each; each thread holds a
database connection while it serves one). One line per request goes to stdout, gunicorn's own
lines to stderr: the platform collects both. With ``LOG_FORMAT=json`` every line is a JSON
object, and the line per request is the app's own, which carries the request's id
(``blog.logs``).
"""

import os

from blog.config import check_or_exit, read_settings

# Checked here, once, before gunicorn starts any worker process: a bad setting stops it with
# one line naming the variable.
_config = check_or_exit("web")
_settings = read_settings()
_host = "0.0.0.0" if _config["APP_ENV"] == "production" else "127.0.0.1"
bind = f"{_host}:{_settings.PORT}"
workers = _settings.WEB_CONCURRENCY
threads = _settings.WEB_THREADS
# One thread: the sync worker, a request at a time. More: the gthread worker, whose threads
# overlap one request's waits (the database, Redis) with another's work, and which keeps the
# router's connections open between requests. docs/performance.md has the measurements.
worker_class = "gthread" if threads > 1 else "sync"
# A connection per thread, as the worker's supervisor gives each job thread one: a request
# that waited for another's connection would hold its thread idle. The worker processes,
# forked after this, read it from the environment.
if threads > _settings.DATABASE_POOL_SIZE:
    os.environ["DATABASE_POOL_SIZE"] = str(threads)
# A platform's router gives up on a request after 30 s; stop working on it by then too.
timeout = 30
# On SIGTERM, let requests in flight finish, well inside a platform's 30 s grace period.
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
# "GET /posts/3 200 12ms 5120 bytes". The path without its query string, which may carry a
# token; and no client address, which behind a router is the router's.
access_log_format = "%(m)s %(U)s %(s)s %(M)sms %(B)s bytes"
# No control socket for gunicornc: the platform starts, scales and stops processes, and the
# socket's default place ($HOME/.gunicorn) would be shared by every gunicorn on a machine.
control_socket_disable = True

if _settings.LOG_FORMAT == "json":
    # gunicorn's lines as JSON too. Its access line is left out: the app logs each request
    # itself, with the request's id, which gunicorn's logger cannot see.
    _json_handler = {"class": "logging.StreamHandler", "formatter": "json"}
    logconfig_dict = {
        # Other libraries' warnings, as JSON (their INFO lines are chatter: alembic's plugins).
        "root": {"level": "WARNING", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["error_console"], "propagate": False},
            "gunicorn.access": {"level": "CRITICAL", "handlers": [], "propagate": False},
        },
        "handlers": {
            "console": {**_json_handler, "stream": "ext://sys.stdout"},
            "error_console": {**_json_handler, "stream": "ext://sys.stderr"},
        },
        "formatters": {"json": {"()": "blog.logs.JsonFormatter"}},
    }
