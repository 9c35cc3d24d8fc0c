"""Recurring jobs, for ``rq cron -c workers.settings workers/cron.py`` (the Procfile's clock).

``rq cron`` enqueues each job on its schedule; the workers run it like any other job. It
takes no lock, so run exactly one clock process: two would enqueue everything twice.
Interval jobs are also enqueued once each time the clock starts.
"""

from rq import cron

from blog.queues import job_meta
from workers.maintenance import refresh_stats, requeue_stranded_work

# rq cron enqueues these itself, not through blog.queues: their tags go in as RQ's meta.
for job in (requeue_stranded_work, refresh_stats):
    cron.register(
        job, queue_name="low", interval=60, job_timeout=120, meta=job_meta(["maintenance"])
    )
