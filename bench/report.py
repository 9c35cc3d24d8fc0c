"""The table: one line per figure, one column per worker; and the same as JSON."""

from dataclasses import dataclass

from bench.measurements import Capped, NotApplicable


@dataclass(frozen=True)
class Line:
    name: str
    row: str  # the measurement that gives it (--rows)
    label: str
    unit: str
    digits: int


LINES = (
    Line("noop", "noop", "no-op drain", "jobs/s", 0),
    Line("tag_sqlite", "tag-sqlite", "auto_tag_post drain, SQLite", "jobs/s", 1),
    Line("tag_postgres", "tag-postgres", "auto_tag_post drain, PostgreSQL", "jobs/s", 1),
    Line("latency_p50", "latency", "enqueue → start, p50", "ms", 1),
    Line("latency_p99", "latency", "enqueue → start, p99", "ms", 1),
    Line("lesson_time", "lesson", "lesson {lesson}: wall time", "s", 1),
    Line("lesson_pss_peak", "lesson", "lesson: peak PSS, all processes", "MB", 0),
    Line("lesson_pss_idle", "lesson", "lesson: PSS idle, before the jobs", "MB", 0),
    Line("scheduled_lateness", "scheduled", "scheduled jobs: lateness min / max", "s", 2),
    Line("retry_lateness", "scheduled", "retries: lateness min / max", "s", 2),
    Line("crash_rerun", "crash", "crash, restart: killed job again after", "s", 1),
    Line("crash_due", "crash", "crash, restart: lateness of the due job", "s", 1),
    Line("crash_busy", "crash", "crash, restart: dead worker listed for", "s", 1),
    Line("survivor_rerun", "crash-survivor", "crash, 2nd worker: killed job again after", "s", 1),
    Line("survivor_due", "crash-survivor", "crash, 2nd worker: lateness of the due job", "s", 1),
    Line("survivor_busy", "crash-survivor", "crash, 2nd worker: dead worker listed for", "s", 1),
)

# The recurring jobs' lines: one column per database, not per worker (bench/recurring.py).
RECURRING_LINES = (
    Line("requeue_ms", "recurring", "requeue_stranded_work, each minute", "ms", 1),
    Line("requeue_round_trips", "recurring", "requeue_stranded_work: Redis", "round trips", 0),
    Line("requeue_commands", "recurring", "requeue_stranded_work: Redis", "commands", 0),
    Line("requeue_first_ms", "recurring", "requeue_stranded_work, first run", "ms", 0),
    Line("stats_ms", "recurring", "refresh_stats, each minute", "ms", 1),
    Line("stats_round_trips", "recurring", "refresh_stats: Redis", "round trips", 0),
)

# Where the rest of the machine's CPU goes under the web rows' load, by kind of process
# (bench/web_users.py); the web processes' own have lines of their own.
MACHINE_KINDS = (
    ("worker", "worker"),
    ("database", "PostgreSQL"),
    ("redis", "Redis"),
    ("load", "load generator"),
    ("rest", "kernel and rest"),
)

# The web rows' lines: one column per database (and formation), not per worker (bench/web.py).
WEB_LINES = (
    Line("web_total", "web", "mixed load: requests", "/s", 0),
    Line("web_errors", "web", "mixed load: errors", "requests", 0),
    Line("web_cpu", "web", "mixed load: web processes' CPU a request", "ms", 1),
    Line("web_busy", "web", "mixed load: the machine's cores busy", "%", 0),
    *(
        Line(f"web_machine_{kind}", "web", f"mixed load: machine's CPU a request, {name}", "ms", 1)
        for kind, name in MACHINE_KINDS
    ),
    *(
        line
        for key, kind in (("create", "create"), ("index", "read /"), ("post", "read post"))
        for line in (
            Line(f"web_{key}_rate", "web", f"{kind}: requests", "/s", 1),
            Line(f"web_{key}_p50", "web", f"{kind}: p50", "ms", 1),
            Line(f"web_{key}_p99", "web", f"{kind}: p99", "ms", 1),
            Line(f"web_{key}_app", "web", f"{kind}: the app's own time, p50", "ms", 1),
            Line(f"web_{key}_errors", "web", f"{kind}: errors", "requests", 0),
        )
    ),
    Line("web_untagged", "web", "posts untagged when the load stopped", "posts", 0),
    Line("web_tagged_after", "web", "every post tagged, after the load", "s", 1),
    Line("web_alone", "web", "/ alone: pages", "/s", 0),
    Line("web_alone_p99", "web", "/ alone: p99", "ms", 1),
    Line("web_alone_app", "web", "/ alone: the app's own time, p50", "ms", 1),
    Line("web_alone_cpu", "web", "/ alone: web processes' CPU a request", "ms", 1),
    *(
        Line(f"web_alone_machine_{kind}", "web", f"/ alone: machine's CPU a page, {name}", "ms", 1)
        for kind, name in MACHINE_KINDS
    ),
    Line("web_alone_made", "web", "/ alone, each page made (no page cache): pages", "/s", 0),
    Line("web_alone_made_cpu", "web", "/ alone, each page made: web CPU a page", "ms", 1),
    Line("web_hello", "web", "bare Flask hello, same gunicorn: requests", "/s", 0),
    Line("web_hello_cpu", "web", "hello: web processes' CPU a request", "ms", 2),
    Line("web_create_share", "web", "creates per hello request", "%", 0),
)

ERROR = "error"


def cell_text(line: Line, value) -> str:
    if value is None:
        return ""
    if value == ERROR:
        return ERROR
    if isinstance(value, Capped):
        return f"> {value.cap:g}"
    if isinstance(value, NotApplicable):
        return "n/a"
    if isinstance(value, tuple):
        low, high = value
        return f"{low:+.{line.digits}f} / {high:+.{line.digits}f}"
    return f"{value:,.{line.digits}f}"


def json_value(value):
    if isinstance(value, Capped | NotApplicable):
        return value.to_json()
    if isinstance(value, tuple):
        return {"min": value[0], "max": value[1]}
    return value


def table(
    results: dict, titles: dict[str, str], rows: list[str], context: dict, lines=LINES
) -> str:
    """``results[line][column]`` as a plain-text table, for the rows that ran."""
    lines = [line for line in lines if line.row in rows]
    header = ["", *titles.values()]
    body = [
        [
            f"{line.label.format(**context)} ({line.unit})",
            *(cell_text(line, results.get(line.name, {}).get(name)) for name in titles),
        ]
        for line in lines
    ]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]

    def render(row: list[str]) -> str:
        first, *cells = row
        return "  ".join(
            [first.ljust(widths[0]), *(c.rjust(w) for c, w in zip(cells, widths[1:], strict=True))]
        ).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(row) for row in body)])
