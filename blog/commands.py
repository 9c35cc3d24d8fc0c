"""The ``flask`` command line: ``flask users ...`` and ``flask jobs ...``."""

from datetime import UTC, datetime, timedelta

import click
from email_validator import EmailNotValidError, validate_email
from flask import Flask
from flask.cli import AppGroup
from sqlalchemy.exc import IntegrityError

from blog import queue_admin
from blog.auth.forms import PASSWORD_MIN
from blog.extensions import db
from blog.models import User
from blog.queues import (
    QUEUE_NAMES,
    UnsafeJobArgument,
    backoff,
    check_job_arguments,
    enqueue,
    enqueue_many,
)
from workers.demo import demo

users = AppGroup("users", help="Manage user accounts.")


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
    email = User.normalise_email(email)
    try:
        validate_email(email, check_deliverability=False)
    except EmailNotValidError as error:
        raise click.BadParameter(str(error), param_hint="EMAIL") from None
    if len(password) < PASSWORD_MIN:
        raise click.BadParameter(
            f"must be at least {PASSWORD_MIN} characters.", param_hint="--password"
        )
    user = User(email=email, is_admin=admin)
    user.set_password(password)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        raise click.ClickException(f"A user with the email {email} already exists.") from None
    click.echo(f"Created {'admin' if admin else 'user'} {email} (id {user.id}).")


jobs = AppGroup("jobs", help="Enqueue demo jobs and look after the queues.")


def parse_time(value: str) -> datetime:
    """An ISO 8601 time; without a zone it is this machine's local time."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} is not a time like 2026-11-23T18:30 or 18:30:00+00:00", param_hint="--at"
        ) from None
    return moment.astimezone(UTC)  # a naive time is taken as local time here


@jobs.command("demo")
@click.option(
    "--delay",
    type=click.FloatRange(0, 3600),
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
    help="How many jobs to enqueue (in one round trip to Redis).",
)
@click.option("--inline", is_flag=True, help="Call the function here and now instead.")
@click.option("--queue", type=click.Choice(QUEUE_NAMES), default="default", show_default=True)
@click.option("--in", "in_seconds", type=click.FloatRange(0), help="Run after this many seconds.")
@click.option("--at", "at_time", help="Run at this time (ISO 8601); a past time runs now.")
@click.option(
    "--fail-rate",
    type=click.FloatRange(0, 1),
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
def demo_command(delay, message, count, inline, queue, in_seconds, at_time, fail_rate, retries):
    """Run the demo job: sleep, log the message, return it."""
    if in_seconds is not None and at_time is not None:
        raise click.UsageError("Give --in or --at, not both.")
    if inline:
        for _ in range(count):
            click.echo(demo(delay, message, fail_rate))
        return

    try:
        check_job_arguments((delay, message, fail_rate), {})
    except UnsafeJobArgument as error:
        raise click.BadParameter(str(error), param_hint="--message") from None
    options = {"retry": backoff(retries)} if retries else {}
    delay_until = None
    if in_seconds is not None:
        delay_until = timedelta(seconds=in_seconds)
    elif at_time is not None:
        delay_until = max(parse_time(at_time) - datetime.now(UTC), timedelta(0))
    if delay_until is not None and delay_until > timedelta(0):
        enqueued = [
            enqueue(demo, delay, message, fail_rate, queue=queue, delay=delay_until, **options)
            for _ in range(count)
        ]
    else:
        enqueued = enqueue_many(demo, [(delay, message, fail_rate)] * count, queue=queue, **options)
    for job in enqueued:
        click.echo(job.id)
    when = f" to run in {delay_until.total_seconds():.0f}s" if delay_until else ""
    click.echo(f"Enqueued {len(enqueued)} demo job(s) on {queue}{when}.", err=True)


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
    workers = queue_admin.worker_stats()
    busy = sum(w.state == "busy" for w in workers)
    click.echo(f"\nworkers: {len(workers)} ({busy} busy)")
    for w in workers:
        doing = f"{w.job_func} ({w.job_id})" if w.job_id else "-"
        click.echo(f"  {w.name:<40} {w.state:<10} {','.join(w.queues):<28} {doing}")


@jobs.command("clear")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def clear_command(yes):
    """Empty every queue and job registry: start over."""
    if not yes:
        click.confirm("Delete every waiting, scheduled, failed and finished job?", abort=True)
    click.echo(f"Removed {queue_admin.clear_all()} job(s).")


@jobs.command("retry-failed")
def retry_failed_command():
    """Put every failed job back on its queue."""
    click.echo(f"Requeued {queue_admin.requeue_failed()} failed job(s).")


def init_app(app: Flask) -> None:
    app.cli.add_command(users)
    app.cli.add_command(jobs)
