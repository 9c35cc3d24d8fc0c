"""Moving scheduled jobs to their queues when they are due: never before, and promptly after.

``enqueue_in``/``enqueue_at`` and a retry's backoff put a job in its queue's scheduled registry
(``rq:scheduled:<queue>``), scored by its due time (to the microsecond: see
``blog.queues.Queue``). Each tick, the scheduler enqueues the jobs whose time has come, and
sleeps until the next one is due, a tick at most.

One scheduler at a time: each queue's lock (RQ's own scheduler lock, so a stock
``rq worker --with-scheduler`` on the same Redis takes turns with this one) is held for
``lock_seconds`` and renewed every tick. RQ's lock lasts 61 s and a stock worker tries to take
a free one only every 10 minutes, so a killed worker stalled every scheduled job and retry for
that long; here every worker process asks for a free lock at each tick, so a dead scheduler is
replaced within ``lock_seconds``.

Moving a job is one transaction (enqueue it, remove it from the registry), so no job is lost
between the two.
"""

import logging
import time

from redis import Redis
from rq.registry import ScheduledJobRegistry

from blog import rq_internals
from blog.queues import Queue

log = logging.getLogger(__name__)

# The longest sleep between two looks at the registries: also how soon a job scheduled for
# "now" by another process is seen.
TICK = 0.1
BATCH = 500


def due_time(score: float) -> float:
    """When the job scored ``score`` is due. The app's queues store the exact time; RQ's own
    (a job enqueued by another program, or by RQ's clean-up) rounds it down to the second, so
    a whole second may stand for any time within the next: it counts as a second later.
    Never early, then, and at most a second late."""
    return score if score % 1 else score + 1


class Scheduler:
    def __init__(self, connection: Redis, queue_names, name: str, lock_seconds: int):
        self.connection = connection
        self.queues = [Queue(name, connection=connection) for name in queue_names]
        self.name = name
        self.lock_seconds = lock_seconds
        self.owned: set[str] = set()
        self._lock = rq_internals.register_lock_script(connection)

    def tick(self, now: float | None = None) -> float:
        """Take or renew the locks and enqueue what is due, in one round trip when nothing is;
        return how long to sleep before the next tick."""
        now = time.time() if now is None else now
        with self.connection.pipeline(transaction=False) as pipeline:
            for queue in self.queues:
                key = ScheduledJobRegistry(queue=queue).key
                self._lock(
                    keys=[rq_internals.scheduler_lock_key(queue.name)],
                    args=[self.name, self.lock_seconds],
                    client=pipeline,
                )
                pipeline.zrangebyscore(key, "-inf", now, start=0, num=BATCH, withscores=True)
                pipeline.zrangebyscore(key, f"({now}", "+inf", start=0, num=1, withscores=True)
            replies = pipeline.execute()
        owned, next_due = set(), now + TICK
        per_queue = zip(replies[0::3], replies[1::3], replies[2::3], strict=True)
        for queue, (lock, candidates, upcoming) in zip(self.queues, per_queue, strict=True):
            if lock == rq_internals.LOCK_TAKEN:
                continue
            owned.add(queue.name)
            due = [job_id.decode() for job_id, score in candidates if due_time(score) <= now]
            if due:
                rq_internals.enqueue_due_jobs(self.connection, queue, due)
                if len(candidates) == BATCH:
                    next_due = now  # there may be more: look again at once
            for _, score in [*candidates, *upcoming]:
                if due_time(score) > now:
                    next_due = min(next_due, due_time(score))
        if owned - self.owned:
            log.info(
                "scheduler %s: scheduling %s", self.name, ", ".join(sorted(owned - self.owned))
            )
        self.owned = owned
        return max(0.0, min(next_due - time.time(), TICK))

    def release(self) -> None:
        """Let another scheduler take over at once (at a clean shutdown)."""
        for name in self.owned:
            rq_internals.release_scheduler_lock(self.connection, name, self.name)
        self.owned = set()
