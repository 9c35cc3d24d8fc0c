"""The clock process (the Procfile's ``clock:``): ``rq cron`` on ``workers/cron.py``, once the
configuration has been checked.

``rq cron`` alone would start with any configuration and enqueue jobs that cannot run; a
wrong setting stops it here instead, with one line naming the variable.
"""

import sys

from rq.cli import main as rq

from blog import logs
from blog.config import check_or_exit

COMMAND = ["cron", "--config", "workers.settings", "workers/cron.py"]

if __name__ == "__main__":
    config = check_or_exit("clock")
    if config["LOG_FORMAT"] == "json":  # rq cron then logs through the app's JSON handler
        logs.configure("json", config["LOG_LEVEL"])
    sys.exit(rq(COMMAND, prog_name="rq"))
