"""The jobs pages: find any job, act on the retrying and scheduled ones, edit one that has not
run yet; for admins (see ``blog.admin.security``). A job's own page, with its traceback, is
rq-dashboard's: every job here links to it.

Every form posts with a CSRF token and works without JavaScript; deleting, and acting on
all the jobs of a list, ask first on a page of their own.
"""

import json
from datetime import UTC, datetime

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from rq.job import JOB_ID_PATTERN
from wtforms import SelectField, StringField

from blog import job_search, pending_jobs
from blog.pagination import paginate_list
from blog.queues import QUEUE_NAMES, redis_connection

bp = Blueprint("jobs", __name__, url_prefix="/admin/jobs")

JOBS_PER_PAGE = 25
# Jobs named one by one in a flash message or on a confirmation page; the rest are counted.
NAMED = 10


@bp.get("")
def find():
    """``/admin/jobs?q=TEXT&tag=TAG&state=STATE``: the jobs that match; every job when all
    three are empty. Without any of them, only the form: a search reads every job RQ holds
    (see ``blog.job_search.find``), so it runs when asked for."""
    text = request.args.get("q", "").strip()
    tag = request.args.get("tag", "").strip()
    state = request.args.get("state", "")
    if state not in job_search.STATES:
        state = ""
    asked = any(name in request.args for name in ("q", "tag", "state"))
    found = []
    if asked:
        states = [state] if state else job_search.STATES
        found = job_search.find(redis_connection(), text, tag, states)
    return render_template(
        "admin/jobs.html",
        asked=asked,
        page=paginate_list(found, JOBS_PER_PAGE),
        text=text,
        tag=tag,
        state=state,
        states=job_search.STATES,
    )


# The retrying and scheduled jobs: a list each, and what can be done to them

ACTIONS = {
    "run": ("Run now", "run now"),
    "delete": ("Delete", "deleted"),
}


@bp.route("/retrying", methods=["GET", "POST"])
def retrying():
    """Sidekiq's Retries tab: the jobs that failed and wait for their next attempt."""
    return pending_list("retrying")


@bp.route("/scheduled", methods=["GET", "POST"])
def scheduled():
    """Sidekiq's Scheduled tab: the jobs enqueued to run later, that have not run yet."""
    return pending_list("scheduled")


def pending_list(state: str):
    """The jobs waiting for their time, soonest first, with "run now" and "delete" for one
    job, the jobs ticked, or all of them."""
    tag = request.values.get("tag", "").strip()
    if request.method == "POST":
        return act(state, tag)
    jobs = [job for job in job_search.pending(redis_connection(), state) if fits(job, tag)]
    return render_template(
        "admin/jobs_pending.html",
        state=state,
        tag=tag,
        page=paginate_list(jobs, JOBS_PER_PAGE),
        now=datetime.now(UTC),
    )


def fits(job: job_search.FoundJob, tag: str) -> bool:
    return not tag or tag in job.tags


def act(state: str, tag: str):
    """Run now or delete: one job (its row's button), the jobs ticked, or all of them. A
    delete, and anything done to all, shows a confirmation page first; it posts back here
    with ``confirmed``."""
    form = request.form
    back = redirect(url_for(f".{state}", tag=tag or None))
    if "run_one" in form or "delete_one" in form:
        action = "run" if "run_one" in form else "delete"
        job_ids = [form[f"{action}_one"]]
    else:
        action, job_ids = form.get("action", ""), form.getlist("job")
    everything = form.get("all") == "1"
    if action not in ACTIONS:
        flash("Choose Run now or Delete.", "error")
        return back
    if not job_ids and not everything:
        flash(f"Tick the jobs to {ACTIONS[action][0].lower()} first.", "error")
        return back
    connection = redis_connection()
    if everything:
        listed = [job for job in job_search.pending(connection, state) if fits(job, tag)]
        job_ids = [job.id for job in listed]
    if (action == "delete" or everything) and form.get("confirmed") != "1":
        if not everything:  # those still waiting: one may have run since the list was shown
            listed = [
                job
                for job in job_search.by_ids(connection, job_ids)
                if job.state in pending_jobs.PENDING
            ]
        return render_template(
            "admin/jobs_confirm.html",
            state=state,
            tag=tag,
            action=action,
            everything=everything,
            jobs=listed,
            named=NAMED,
        )
    done, refused = [], []
    for job_id in job_ids:
        if not JOB_ID_PATTERN.fullmatch(job_id):
            refused.append(f"{job_id[:40]!r} is not a job id.")
            continue
        try:
            if action == "run":
                pending_jobs.run_now(connection, job_id)
            else:
                pending_jobs.delete(connection, job_id)
        except pending_jobs.NotPending as error:
            refused.append(str(error))
        else:
            done.append(job_id)
    say_what_was_done(action, done, refused)
    return back


def say_what_was_done(action: str, done: list[str], refused: list[str]) -> None:
    if done:
        one = len(done) == 1
        jobs = "1 job" if one else f"{len(done)} jobs"
        if action == "run":
            where = "it on its queue" if one else "them on their queues"
            flash(
                f"{jobs} due now: the worker's scheduler puts {where} within a second "
                f"({named(done)}).",
                "success",
            )
        else:
            flash(f"{jobs} deleted ({named(done)}).", "success")
    for reason in refused[:NAMED]:
        flash(f"Not {ACTIONS[action][1]}: {reason}", "error")
    if len(refused) > NAMED:
        flash(f"... and {len(refused) - NAMED} more not {ACTIONS[action][1]}.", "error")
    if not done and not refused:
        flash("None of those jobs is on the list any more: nothing to do.", "info")


def named(job_ids: list[str]) -> str:
    shown = ", ".join(job_ids[:NAMED])
    return shown + (f" and {len(job_ids) - NAMED} more" if len(job_ids) > NAMED else "")


# Editing one pending job


class EditJobForm(FlaskForm):
    due = StringField(
        "Due (UTC)",
        description="Like 2026-12-05 09:30:00, or with a zone (+01:00). "
        "Empty for a queued job: it stays on its queue.",
    )
    queue = SelectField("Queue", choices=list(QUEUE_NAMES))
    args = StringField("Arguments", description='A JSON list: [0.5, "hello", 0]')
    kwargs = StringField("Keyword arguments", description='A JSON object: {"fail_rate": 0.5}')


def form_values(found: job_search.FoundJob) -> dict:
    """What the edit form shows for the job as it is."""
    job = found.job
    return {
        "due": found.due.strftime("%Y-%m-%d %H:%M:%S") if found.due else "",
        "queue": found.queue,
        "args": json.dumps(list(job.args), default=repr),
        "kwargs": json.dumps(job.kwargs, default=repr),
    }


def parse_due(text: str) -> datetime:
    """An ISO 8601 time, in UTC; without a zone, it is UTC."""
    try:
        due = datetime.fromisoformat(text.strip())
        return due.astimezone(UTC) if due.tzinfo else due.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        raise ValueError(f"“{text[:40]}” is not a time like 2026-12-05 09:30:00") from None


def changes_asked(form: EditJobForm, before: dict) -> dict | None:
    """The keyword arguments of ``pending_jobs.edit`` for the fields the admin changed; None,
    with the fields' errors set, when one cannot be read."""
    changes = {}
    if form.due.data.strip() != before["due"] and form.due.data.strip():
        try:
            changes["due"] = parse_due(form.due.data)
        except ValueError as error:
            form.due.errors.append(str(error))
    if form.queue.data != before["queue"]:
        changes["queue"] = form.queue.data
    if (form.args.data, form.kwargs.data) != (before["args"], before["kwargs"]):
        try:
            args = pending_jobs.json_arguments(form.args.data, list)
        except ValueError as error:
            form.args.errors.append(str(error))
        try:
            kwargs = pending_jobs.json_arguments(form.kwargs.data, dict)
        except ValueError as error:
            form.kwargs.errors.append(str(error))
        if not (form.args.errors or form.kwargs.errors):
            changes["arguments"] = (tuple(args), kwargs)
    if form.due.errors or form.args.errors or form.kwargs.errors:
        return None
    return changes


@bp.route("/<job_id>/edit", methods=["GET", "POST"])
def edit(job_id: str):
    """A pending job's due time, queue and arguments, changed in place (Resque's "modify a
    pending job"); a job that has started is shown, and refused."""
    if not JOB_ID_PATTERN.fullmatch(job_id):
        abort(404)
    connection = redis_connection()
    jobs = job_search.by_id(connection, job_id)
    if not jobs:
        abort(404)
    found = jobs[0]
    # A job pickled by code this process cannot import keeps its arguments: they cannot be
    # shown, so they cannot be changed here.
    editable = found.state in pending_jobs.PENDING and found.function != job_search.UNREADABLE
    before = form_values(found) if editable else {}
    form = EditJobForm(data=before)
    if request.method == "POST" and not editable:
        flash(f"Job {job_id} is {found.state}: it cannot be changed here.", "error")
        return redirect(url_for(".edit", job_id=job_id))
    if form.validate_on_submit():
        changes = changes_asked(form, before)
        if changes == {}:
            flash("Nothing changed.", "info")
            return redirect(url_for(".edit", job_id=job_id))
        if changes:
            try:
                pending_jobs.edit(connection, job_id, **changes)
            except pending_jobs.BadEdit as error:
                field = form.args if error.field == "arguments" else form[error.field]
                field.errors.append(str(error))
            except pending_jobs.NotPending as error:
                flash(f"Not changed: {error}", "error")
                return redirect(url_for(".edit", job_id=job_id))
            else:
                flash(f"Job {job_id} changed: {', '.join(what_changed(changes))}.", "success")
                return redirect(url_for(".edit", job_id=job_id))
    return render_template(
        "admin/jobs_edit.html",
        job=found,
        form=form,
        editable=editable,
        unreadable=job_search.UNREADABLE,
    )


def what_changed(changes: dict) -> list[str]:
    said = []
    if "due" in changes:
        said.append(f"due {changes['due']:%Y-%m-%d %H:%M:%S} UTC")
    if "queue" in changes:
        said.append(f"on {changes['queue']}")
    if "arguments" in changes:
        said.append("new arguments")
    return said
