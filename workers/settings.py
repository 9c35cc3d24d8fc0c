"""Settings for RQ's command line, so that it connects exactly as the app does.

``rq cron -c workers.settings`` (the clock), ``rq info -c workers.settings`` and a stock
``rq worker -c workers.settings``, if you run one, read
``REDIS_URL`` and ``QUEUES`` from here. RQ itself would look at ``--url`` or
``RQ_REDIS_URL``; this way ``REDIS_PROVIDER``, ``.env`` and the TLS options apply too.
"""

import os

from blog import ROOT
from blog.config import redis_url
from blog.queues import QUEUE_NAMES

REDIS_URL = redis_url(os.environ, ROOT / "instance")
QUEUES = list(QUEUE_NAMES)
