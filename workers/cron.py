"""Recurring jobs, for ``rq cron -c workers.settings workers/cron.py`` (the Procfile's clock).

``rq cron`` enqueues each job on its schedule; the workers run it like any other job. It
takes no lock, so run exactly one clock process: two would enqueue everything twice.
Interval jobs are also enqueued once each time the clock starts.
"""

from rq import cron

from workers.maintenance import refresh_stats, requeue_stranded_work

cron.register(requeue_stranded_work, queue_name="low", interval=60, job_timeout=120)
cron.register(refresh_stats, queue_name="low", interval=60, job_timeout=120)
