"""Recurring jobs, for ``rq cron -c workers.settings workers/cron.py`` (the Procfile's clock).

``rq cron`` enqueues each job on its schedule; the workers run it like any other job. It
takes no lock, so run exactly one clock process: two would enqueue everything twice.
Interval jobs are also enqueued once each time the clock starts.
"""

from rq import cron

from blog.config import read_settings
from blog.queues import dead_job_ttl, job_meta
from workers.maintenance import refresh_stats, requeue_stranded_work, trim_dead_jobs

# A recurring job that fails is kept no longer than any other (blog.dead_jobs).
FAILURE_TTL = dead_job_ttl(read_settings().DEAD_JOBS_MAX_AGE)

# rq cron enqueues these itself, not through blog.queues: their tags go in as RQ's meta.
for job in (requeue_stranded_work, refresh_stats, trim_dead_jobs):
    cron.register(
        job,
        queue_name="low",
        interval=60,
        job_timeout=120,
        failure_ttl=FAILURE_TTL,
        meta=job_meta(["maintenance"]),
    )
