"""gunicorn's settings, read from the environment as a platform sets it.

``PORT`` is the port to listen on and ``WEB_CONCURRENCY`` the number of worker processes
(each holds up to ``DATABASE_POOL_SIZE`` database connections). Logs go to stdout.
"""

import os

from blog.config import app_env

_host = "0.0.0.0" if app_env() == "production" else "127.0.0.1"
bind = f"{_host}:{os.environ.get('PORT', '5000')}"
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# A platform's router gives up on a request after 30 s; stop working on it by then too.
timeout = 30
# On SIGTERM, let requests in flight finish, well inside a platform's 30 s grace period.
graceful_timeout = 20
accesslog = "-"
errorlog = "-"
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms'
