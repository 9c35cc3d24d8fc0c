"""The ``flask`` command line: ``flask users ...`` and ``flask jobs ...``."""

import math
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import click
from click.core import ParameterSource
from flask import Flask
from flask.cli import AppGroup
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rq.job import Job, JobStatus
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from blog import dead_jobs, job_search, job_stats, pending_jobs, queue_admin, redis_keys
from blog.auth.policy import PolicyError, check_password, checked_email
from blog.extensions import db
from blog.models import User
from blog.queues import (
    QUEUE_NAMES,
    UnsafeJobArgument,
    backoff,
    check_job_arguments,
    check_tags,
    enqueue,
    enqueue_many,
    redis_connection,
)
from workers.demo import demo

users = AppGroup("users", help="Manage user accounts.")


@contextmanager
def database_errors():
    """Turn "no such table" and "connection refused" into one clear line and a hint."""
    try:
        yield
    except (OperationalError, ProgrammingError) as error:
        db.session.rollback()
        raise click.ClickException(
            f"The database is not ready: {error.orig}. Is DATABASE_URL right, and has "
            "`flask db upgrade` run? (make run does both.)"
        ) from None


@users.command("create")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Let this user reach the admin pages.")
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    help="Asked for when not given.",
)
def create_user(email: str, admin: bool, password: str) -> None:
    """Create a user with EMAIL, optionally an admin."""
    try:
        email = checked_email(email)
    except PolicyError as error:
        raise click.BadParameter(str(error), param_hint="EMAIL") from None
    try:
        check_password(password)
    except PolicyError as error:
        raise click.BadParameter(str(error), param_hint="--password") from None
    user = User(email=email, is_admin=admin)
    user.set_password(password)
    db.session.add(user)
    with database_errors():
        try:
            db.session.commit()
        except IntegrityError:
            db.session.rollback()
            raise click.ClickException(
                f"A user with the email {email} already exists "
                "(`flask users promote` makes an existing user an admin)."
            ) from None
    click.echo(f"Created {'admin' if admin else 'user'} {email} (id {user.id}).")


@users.command("promote")
@click.argument("email")
@click.option("--revoke", is_flag=True, help="Take the admin rights away instead.")
def promote_user(email: str, revoke: bool) -> None:
    """Make the user with EMAIL an admin (one who signed up on the site, say)."""
    with database_errors():
        user = User.by_email(email)
        if user is None:
            raise click.ClickException(f"There is no user with the email {email}.")
        user.is_admin = not revoke
        db.session.commit()
    click.echo(f"{user.email} is {'no longer' if revoke else 'now'} an admin.")


class JobsGroup(AppGroup):
    """``flask jobs``: a Redis that cannot be reached is one line with a hint, no traceback."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (RedisConnectionError, RedisTimeoutError) as error:
            raise click.ClickException(
                f"Cannot reach Redis: {error}. Is `make run` running, or REDIS_URL set?"
            ) from None


def finite(ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter("must be a number", ctx=ctx, param=param)
    return value


jobs = JobsGroup("jobs", help="Enqueue demo jobs and look after the queues.")

YEAR = 366 * 24 * 3600


def parse_time(value: str) -> datetime:
    """An ISO 8601 time; without a zone it is this machine's local time."""
    try:
        return datetime.fromisoformat(value).astimezone(UTC)  # naive: local time here
    except (ValueError, OverflowError):
        raise click.BadParameter(
            f"{value!r} is not a time like 2026-11-23T18:30 or 2026-11-23T18:30:00+01:00",
            param_hint="--at",
        ) from None


def options_given(*names: str) -> list[str]:
    """How the options ``names`` are spelt on the command line, for those the user gave."""
    ctx = click.get_current_context()
    return [
        param.opts[0]
        for param in ctx.command.params
        if param.name in names and ctx.get_parameter_source(param.name) != ParameterSource.DEFAULT
    ]


@jobs.command("demo")
@click.option(
    "--delay",
    type=click.FloatRange(0, 3600),
    callback=finite,
    default=1.0,
    show_default=True,
    help="Seconds each job sleeps.",
)
@click.option("--message", default="hello from a background job", show_default=True)
@click.option(
    "--count",
    type=click.IntRange(1, 100_000),
    default=1,
    show_default=True,
    help="How many jobs to enqueue (in one round trip to Redis, unless scheduled).",
)
@click.option("--inline", is_flag=True, help="Call the function here and now instead.")
@click.option("--queue", type=click.Choice(QUEUE_NAMES), default="default", show_default=True)
@click.option(
    "--in",
    "in_seconds",
    type=click.FloatRange(0, YEAR),
    callback=finite,
    help="Run after this many seconds (a year at most).",
)
@click.option("--at", "at_time", help="Run at this time (ISO 8601); a past time runs now.")
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
    callback=finite,
    default=0.0,
    show_default=True,
    help="Odds that a job fails on purpose.",
)
@click.option(
    "--retries",
    type=click.IntRange(0, 25),
    default=0,
    show_default=True,
    help="Retry a failed job this many times, with Sidekiq-style backoff.",
)
@click.option(
    "--timeout",
    type=click.IntRange(1, 24 * 3600),
    help="Stop a job still running after this many seconds: it fails (and is retried if it "
    "has retries left). RQ's default is 180.",
)
@click.option(
    "--tag",
    "tags",
    multiple=True,
    help="Tag the jobs with this (as well as demo), to find them: --tag lesson:4. Repeatable.",
)
def demo_command(
    delay, message, count, inline, queue, in_seconds, at_time, fail_rate, retries, timeout, tags
):
    """Run the demo job: sleep, log the message, return it."""
    if in_seconds is not None and at_time is not None:
        raise click.UsageError("Give --in or --at, not both.")
    if inline:
        given = options_given("queue", "in_seconds", "at_time", "retries", "tags")
        if given:  # they mean nothing to a plain function call
            raise click.UsageError(f"--inline runs the job here and now: drop {', '.join(given)}.")
        for _ in range(count):
            click.echo(demo(delay, message, fail_rate))
        return

    try:
        check_job_arguments((delay, message, fail_rate), {})
    except UnsafeJobArgument as error:
        raise click.BadParameter(str(error), param_hint="--message") from None
    tags = ("demo", *tags)
    try:
        check_tags(tags)
    except UnsafeJobArgument as error:
        raise click.BadParameter(str(error), param_hint="--tag") from None
    options = {"retry": backoff(retries)} if retries else {}
    if timeout:
        options["job_timeout"] = timeout
    delay_until = None
    if in_seconds is not None:
        delay_until = timedelta(seconds=in_seconds)
    elif at_time is not None:
        delay_until = max(parse_time(at_time) - datetime.now(UTC), timedelta(0))
    if delay_until is not None and delay_until > timedelta(0):
        enqueued = [
            enqueue(
                demo,
                delay,
                message,
                fail_rate,
                queue=queue,
                delay=delay_until,
                tags=tags,
                **options,
            )
            for _ in range(count)
        ]
    else:
        enqueued = enqueue_many(
            demo, [(delay, message, fail_rate)] * count, queue=queue, tags=tags, **options
        )
    for job in enqueued:
        click.echo(job.id)
    due = datetime.now(UTC) + delay_until if delay_until else None
    when = f" to run at {due:%Y-%m-%d %H:%M:%S} UTC" if due else ""
    limit = f", timeout {timeout} s" if timeout else ""
    click.echo(f"Enqueued {len(enqueued)} demo job(s) on {queue}{when}{limit}.", err=True)


@jobs.command("find")
@click.argument("text", default="")
@click.option("--tag", default="", help="Only the jobs with this tag (post:42, demo ...).")
@click.option("--state", type=click.Choice(job_search.STATES), help="Only the jobs in this state.")
@click.option(
    "--limit",
    type=click.IntRange(1, 100_000),
    default=50,
    show_default=True,
    help="Print this many jobs at most, newest first.",
)
def find_command(text, tag, state, limit):
    """The jobs whose id, function, arguments or tags contain TEXT, in every queue and
    registry (all of them without TEXT)."""
    found = job_search.find(redis_connection(), text, tag, [state] if state else job_search.STATES)
    for job in found[:limit]:
        click.echo(job_line(job))
    more = f", the newest {limit} shown (--limit)" if len(found) > limit else ""
    click.echo(f"{len(found)} job(s){more}; times are UTC, when due or else enqueued.")


@jobs.command("edit")
@click.argument("job_id")
@click.option(
    "--in",
    "in_seconds",
    type=click.FloatRange(0, YEAR),
    callback=finite,
    help="Due in this many seconds (a queued job is scheduled).",
)
@click.option("--at", "at_time", help="Due at this time (ISO 8601; without a zone, local time).")
@click.option("--queue", type=click.Choice(QUEUE_NAMES), help="Move it to this queue.")
@click.option("--args", "args_json", help="New arguments, a JSON list: '[0, \"hi\", 0]'.")
@click.option("--kwargs", "kwargs_json", help="New keyword arguments, a JSON object.")
def edit_command(job_id, in_seconds, at_time, queue, args_json, kwargs_json):
    """Change a job that has not started: when it is due, its queue, its arguments."""
    if in_seconds is not None and at_time is not None:
        raise click.UsageError("Give --in or --at, not both.")
    changes = {}
    if in_seconds is not None:
        changes["due"] = datetime.now(UTC) + timedelta(seconds=in_seconds)
    elif at_time is not None:
        changes["due"] = parse_time(at_time)
    if queue is not None:
        changes["queue"] = queue
    if args_json is not None or kwargs_json is not None:
        try:
            args = pending_jobs.json_arguments(args_json or "", list)
            kwargs = pending_jobs.json_arguments(kwargs_json or "", dict)
        except ValueError as error:
            raise click.BadParameter(str(error), param_hint="--args/--kwargs") from None
        if args_json is None or kwargs_json is None:  # keep the half not given
            job = job_search.by_id(redis_connection(), job_id)
            if job:
                args = args if args_json is not None else list(job[0].job.args)
                kwargs = kwargs if kwargs_json is not None else job[0].job.kwargs
        changes["arguments"] = (tuple(args), kwargs)
    if not changes:
        raise click.UsageError("Say what to change: --in, --at, --queue, --args or --kwargs.")
    try:
        job = pending_jobs.edit(redis_connection(), job_id, **changes)
    except pending_jobs.BadEdit as error:
        raise click.ClickException(f"Not changed: {error}") from None
    except pending_jobs.NotPending as error:
        raise click.ClickException(f"Not changed: {error}") from None
    found = job_search.by_id(redis_connection(), job.id)
    click.echo(f"Changed: {job_line(found[0]) if found else job.id + ', which has run since'}")


def job_line(job: job_search.FoundJob) -> str:
    """A job as ``flask jobs find`` prints it: id, state, queue, due (or enqueued) time in
    UTC, the call, the tags."""
    when = f"{job.when:%Y-%m-%d %H:%M:%S}" if job.when else "-"
    call = f"{job.function}({job.arguments})"
    return f"{job.id:<36} {job.state:<9} {job.queue:<8} {when}  {call}  {' '.join(job.tags)}"


@jobs.command("stats")
def stats_command():
    """Each queue's counts, and what the workers are doing."""
    header = (
        "queue",
        "waiting",
        "scheduled",
        "retrying",
        "started",
        "failed",
        "deferred",
        "finished",
        "latency",
    )
    click.echo("{:<8} {:>8} {:>9} {:>8} {:>8} {:>7} {:>8} {:>8} {:>8}".format(*header))
    for q in queue_admin.queue_stats():
        click.echo(
            f"{q.name:<8} {q.waiting:>8} {q.scheduled:>9} {q.retrying:>8} {q.started:>8} "
            f"{q.failed:>7} {q.deferred:>8} {q.finished:>8} {q.latency:>7.1f}s"
        )
    paused = queue_admin.paused_queues(redis_connection())
    if paused:
        click.echo(f"paused: {', '.join(name for name in QUEUE_NAMES if name in paused)}")
    # Runs, not jobs: a job retried twice counts three times; the registries above keep
    # jobs, and forget the finished ones after a while.
    totals = job_stats.totals(redis_connection())
    click.echo(
        f"\nruns: {totals[job_stats.PROCESSED]:,} processed, {totals[job_stats.FAILED]:,} failed "
        "(since `flask jobs reset-stats`)"
    )
    trimmed = dead_jobs.last_trim(redis_connection())
    if trimmed:
        click.echo(trimmed.describe())
    workers = queue_admin.worker_stats()
    click.echo(f"workers: {len(workers)} ({queue_admin.busy(workers)} busy)")
    for w in workers:
        doing = f"{w.job_func} ({w.job_id})" if w.job_id else "-"
        click.echo(f"  {w.name:<40} {w.state:<10} {','.join(w.queues):<28} {doing}")


@jobs.command("pause")
@click.argument("queue", type=click.Choice(QUEUE_NAMES))
def pause_command(queue):
    """Take no more jobs from QUEUE (it still accepts them) until `flask jobs resume`."""
    if queue_admin.pause(queue):
        click.echo(
            f"{queue} paused: the workers take none of its jobs within 2 s; "
            f"jobs enqueued meanwhile wait. `flask jobs resume {queue}` to go on."
        )
    else:
        click.echo(f"{queue} was paused already.")


@jobs.command("resume")
@click.argument("queue", type=click.Choice(QUEUE_NAMES))
def resume_command(queue):
    """Let the workers take QUEUE's jobs again."""
    if queue_admin.resume(queue):
        click.echo(f"{queue} resumed.")
    else:
        click.echo(f"{queue} was not paused.")


@jobs.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear_command(yes):
    """Empty every queue and job registry: start over."""
    if not yes:
        click.confirm("Delete every waiting, scheduled, failed and finished job?", abort=True)
    cleared = queue_admin.clear_all()
    places = ", ".join(f"{count} {place}" for place, count in cleared.jobs.items())
    click.echo(f"Removed {cleared.total} job(s){': ' + places if places else ''}.")
    click.echo(f"Deleted {cleared.keys} Redis key(s) of RQ's: queues, registries and job records.")


@jobs.command("retry-failed")
def retry_failed_command():
    """Put every failed job back on its queue."""
    click.echo(f"Requeued {queue_admin.requeue_failed()} failed job(s).")


@jobs.command("reset-stats")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def reset_stats_command(yes):
    """Set the processed and failed counters back to zero (the jobs stay)."""
    if not yes:
        click.confirm("Set the processed and failed counters to zero?", abort=True)
    before = job_stats.reset(redis_connection())
    click.echo(
        f"Counters reset (they were {before[job_stats.PROCESSED]:,} processed, "
        f"{before[job_stats.FAILED]:,} failed)."
    )


@jobs.command("redis")
def redis_command():
    """What RQ and the app keep in Redis, by kind: keys, entries, memory. No values."""
    space = redis_keys.keyspace(redis_connection())
    click.echo(f"{'kind':<22} {'keys':>6} {'entries':>8} {'memory':>9}")
    for kind in space.kinds:
        click.echo(
            f"{kind.kind:<22} {kind.keys:>6,} {kind.entries:>8,} "
            f"{redis_keys.human_bytes(kind.memory):>9}"
        )
    click.echo(
        f"{space.keys:,} key(s); the Redis server uses "
        f"{redis_keys.human_bytes(space.used_memory)} in all."
    )


POLL_SECONDS = 0.2


def busy_counts(names: tuple[str, ...], retries: bool, scheduled: bool) -> tuple[int, int]:
    """Jobs of the queues ``names`` waiting (on the queue; for a retry, for their time), and
    jobs running or being picked up now."""
    queues = [q for q in queue_admin.queue_stats() if q.name in names]
    waiting = sum(
        q.waiting + (q.retrying if retries or scheduled else 0) + (q.scheduled if scheduled else 0)
        for q in queues
    )
    running = sum(q.started for q in queues)
    if set(names) == set(QUEUE_NAMES):  # a worker may be busy on another queue's job
        running = max(running, queue_admin.busy(queue_admin.worker_stats()))
    return waiting, running


@jobs.command("wait")
@click.option(
    "--timeout",
    type=click.FloatRange(0, 24 * 3600),
    callback=finite,
    default=600,
    show_default=True,
    help="Give up after this many seconds.",
)
@click.option("--retries", is_flag=True, help="Wait for the jobs waiting for a retry too.")
@click.option(
    "--scheduled",
    is_flag=True,
    help="Wait for the scheduled jobs (and retries) to come due and run too.",
)
@click.option(
    "--queue",
    "queues",
    type=click.Choice(QUEUE_NAMES),
    multiple=True,
    help="Wait for this queue's jobs only (repeat for more); all queues by default.",
)
@click.option(
    "--job",
    "job_ids",
    multiple=True,
    metavar="ID",
    help="Wait for this job to end instead (finished, failed or stopped), even one scheduled "
    "for later or waiting for a retry. May be given more than once.",
)
@click.option(
    "--started",
    "until_started",
    is_flag=True,
    help="Return once every job has been taken by a worker, running or not.",
)
def wait_command(timeout, retries, scheduled, queues, job_ids, until_started):
    """Wait until no job is waiting or running (scheduled ones may be due later)."""
    names = queues or QUEUE_NAMES
    what = "waiting, running or scheduled" if scheduled else "waiting or running"
    where = f" on {', '.join(queues)}" if queues else ""
    started = time.monotonic()
    if job_ids:
        wait_for_jobs(job_ids, timeout, started)
        return
    quiet_polls = 0
    # Twice in a row: between leaving its queue and entering the started registry, a job
    # that a worker has just taken shows in neither.
    while True:
        waiting, running = busy_counts(names, retries, scheduled)
        if until_started:
            running = 0  # running is what we wait for: only the waiting ones count
        quiet_polls = quiet_polls + 1 if waiting == running == 0 else 0
        if quiet_polls == 2:
            break
        if not quiet_polls and time.monotonic() - started > timeout:
            raise click.ClickException(
                f"Still {waiting} job(s) waiting and {running} running after {timeout:g} s."
            )
        time.sleep(POLL_SECONDS)
    waited = time.monotonic() - started
    if until_started:
        click.echo(f"No job waiting: the workers have taken them all (waited {waited:.1f} s).")
    else:
        click.echo(f"No job {what}{where} (waited {waited:.1f} s).")


# What a job ends as. A job whose record is gone (its result kept no longer) ended too.
ENDED = {JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, None}


def job_statuses(job_ids) -> dict[str, JobStatus | None]:
    jobs = Job.fetch_many(list(job_ids), connection=redis_connection())
    return {
        job_id: job.get_status(refresh=False) if job else None
        for job_id, job in zip(job_ids, jobs, strict=True)
    }


def wait_for_jobs(job_ids, timeout: float, started: float) -> None:
    """Until every job of ``job_ids`` has ended; then say how each ended."""
    while True:
        statuses = job_statuses(job_ids)
        if all(status in ENDED for status in statuses.values()):
            break
        if time.monotonic() - started > timeout:
            left = ", ".join(
                f"{job_id} ({status.value})"
                for job_id, status in statuses.items()
                if status not in ENDED
            )
            raise click.ClickException(f"Still waiting after {timeout:g} s for: {left}.")
        time.sleep(POLL_SECONDS)
    waited = time.monotonic() - started
    for job_id, status in statuses.items():
        outcome = status.value if status else "ended (its record is gone)"
        click.echo(f"Job {job_id} {outcome} (waited {waited:.1f} s).")


def init_app(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(jobs)
