"""The admin pages that act on the job system, as Sidekiq's Web UI does: pause and resume a
queue and quiet a worker process (``/admin/workers``), requeue or delete failed jobs
(``/admin/dead``), and see and run the recurring jobs (``/admin/recurring``).

Each action is a POST from a form of these pages (``blog.admin.security`` checks who sends
it and from where; the form carries a CSRF token), says what it did or why it could not, and
one that cannot be undone asks first, on a page of its own: no JavaScript needed.
"""

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from rq.job import JOB_ID_PATTERN

from blog import dead_jobs, queue_admin, recurring
from blog.pagination import paginate_list
from blog.queues import QUEUE_NAMES, redis_connection

bp = Blueprint("operations", __name__, url_prefix="/admin")

DEAD_PER_PAGE = 25
ACTIONS = {"requeue": "Requeue", "delete": "Delete"}


# --- Workers and queues ---------------------------------------------------------------------


@bp.get("/workers")
def workers():
    return render_template(
        "admin/workers.html",
        queues=queue_admin.queue_stats(),
        processes=queue_admin.worker_processes(),
    )


@bp.post("/queues/<queue_name>/pause")
def pause(queue_name: str):
    if queue_name not in QUEUE_NAMES:
        abort(404)
    if queue_admin.pause(queue_name):
        flash(
            f"{queue_name} is paused: the workers take none of its jobs within 2 s (the "
            "running ones finish), and jobs enqueued meanwhile wait.",
            "info",
        )
    else:
        flash(f"{queue_name} was paused already.", "info")
    return redirect(url_for(".workers"))


@bp.post("/queues/<queue_name>/resume")
def resume(queue_name: str):
    if queue_name not in QUEUE_NAMES:
        abort(404)
    if queue_admin.resume(queue_name):
        flash(f"{queue_name} is resumed: the workers take its jobs again.", "info")
    else:
        flash(f"{queue_name} was not paused.", "info")
    return redirect(url_for(".workers"))


@bp.route("/workers/quiet", methods=["GET", "POST"])
def quiet():
    """GET asks first (quiet cannot be undone: the process waits for its SIGTERM); POST
    quiets the process named by ``process``, a prefix of its workers' names."""
    name = request.values.get("process", "")
    process = next((p for p in queue_admin.worker_processes() if p.name == name), None)
    if process is None:
        flash(f"No worker process {name!r} is running (it may have stopped meanwhile).", "error")
        return redirect(url_for(".workers"))
    if request.method == "GET":
        return render_template("admin/quiet.html", process=process)
    try:
        newly = queue_admin.quiet(process.prefix)
    except ValueError as error:  # it stopped between the two reads
        flash(f"Could not quiet it: {error}.", "error")
        return redirect(url_for(".workers"))
    if newly:
        flash(
            f"{process.name} is quiet within 2 s: its running jobs finish, it takes no more, "
            "and it waits for SIGTERM (a deploy, or a restart of the worker).",
            "info",
        )
    else:
        flash(f"{process.name} was told to be quiet already.", "info")
    return redirect(url_for(".workers"))


# --- Failed jobs --------------------------------------------------------------------------


@bp.get("/dead")
def dead():
    connection = redis_connection()
    everything = dead_jobs.newest_first(connection)
    page = paginate_list(everything, DEAD_PER_PAGE)
    return render_template(
        "admin/dead.html",
        jobs=dead_jobs.describe(page.items, connection),
        page=page,
        total=len(everything),
    )


def chosen_jobs() -> tuple[list[tuple[str, str]], int]:
    """The failed jobs a form chose, as ``(queue, job id)``, from its ``job`` values
    (``queue:id``); and how many values were not such."""
    chosen, bad = [], 0
    for value in request.values.getlist("job"):
        queue, _, job_id = value.partition(":")
        if queue in QUEUE_NAMES and JOB_ID_PATTERN.fullmatch(job_id):
            chosen.append((queue, job_id))
        else:
            bad += 1
    return chosen, bad


@bp.get("/dead/confirm")
def confirm_dead():
    """Ask before requeueing or deleting the chosen failed jobs, or all of them."""
    action = request.args.get("action", "")
    everything = request.args.get("all") == "1"
    chosen, _ = chosen_jobs()
    if action not in ACTIONS:
        flash("Choose Requeue or Delete.", "error")
        return redirect(url_for(".dead"))
    if not everything and not chosen:
        flash("Tick the jobs to act on first, or choose all of them.", "error")
        return redirect(url_for(".dead"))
    total = len(dead_jobs.newest_first(redis_connection())) if everything else len(chosen)
    return render_template(
        "admin/dead_confirm.html",
        action=action,
        verb=ACTIONS[action],
        everything=everything,
        chosen=chosen,
        total=total,
    )


def act_on_dead(action: str):
    connection = redis_connection()
    if request.form.get("all") == "1":
        jobs, bad = dead_jobs.newest_first(connection), 0
    else:
        jobs, bad = chosen_jobs()
    if not jobs and not bad:
        flash("No job was chosen: nothing done.", "error")
        return redirect(url_for(".dead"))
    if action == "requeue":
        done = dead_jobs.requeue(jobs)
        said = f"Requeued {done:,} failed job(s) on their queues."
    else:
        done = dead_jobs.delete(jobs, connection)
        said = f"Deleted {done:,} failed job(s)."
    if done < len(jobs):
        said += f" {len(jobs) - done:,} had been requeued, deleted or expired meanwhile."
    if bad:
        said += f" {bad:,} choice(s) did not name a failed job, and were left out."
    flash(said, "info")
    return redirect(url_for(".dead"))


@bp.post("/dead/requeue")
def requeue_dead():
    return act_on_dead("requeue")


@bp.post("/dead/delete")
def delete_dead():
    return act_on_dead("delete")


# --- Recurring jobs -------------------------------------------------------------------------


@bp.get("/recurring")
def recurring_jobs():
    return render_template(
        "admin/recurring.html",
        jobs=recurring.states(redis_connection()),
        clock=recurring.clock_running(redis_connection()),
    )


@bp.post("/recurring/run")
def run_recurring():
    """Enqueue a recurring job now, as the clock would: same function, arguments and queue."""
    name = request.form.get("name", "")
    job = recurring.run_now(redis_connection(), name)
    if job is None:
        flash(f"There is no recurring job {name!r}.", "error")
    else:
        flash(f"Enqueued {name} (job {job.id}).", "info")
    return redirect(url_for(".recurring_jobs"))
