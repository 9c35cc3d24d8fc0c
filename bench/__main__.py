"""Run the benchmark suite and print one table: ``make bench``, or ``python -m bench --help``."""

import argparse
import json
import os
import platform
import signal
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import rq

from bench import recurring, web
from bench.measurements import PARALLEL_ROWS, ROWS, Cell, Settings, default_pool_size
from bench.processes import EXTRA_CONFIG, ROOT, columns
from bench.report import ERROR, LINES, RECURRING_LINES, WEB_LINES, cell_text, json_value, table

# The recurring jobs' row and the web row have a column per database, in tables of their own.
RECURRING = "recurring"
WEB = "web"
ALL_ROWS = [*ROWS, RECURRING, WEB]


def names(choices):
    def parse(text: str) -> list[str]:
        picked = [name.strip() for name in text.split(",") if name.strip()]
        unknown = [name for name in picked if name not in choices]
        if unknown or not picked:
            raise argparse.ArgumentTypeError(
                f"{', '.join(unknown) or 'nothing'}: choose from {', '.join(choices)}"
            )
        return picked

    return parse


def positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
        return value

    return parse


def formations(text: str) -> list:
    try:
        return [web.Formation.parse(part.strip()) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: web × worker processes, e.g. 1x1,2x2"
        ) from None


def parse_args(argv=None) -> argparse.Namespace:
    all_columns = columns()
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="The app's worker side by side with RQ's stock workers (docs/performance.md).",
    )
    parser.add_argument(
        "--rows", type=names(ALL_ROWS), default=ALL_ROWS, help=f"some of: {','.join(ALL_ROWS)}"
    )
    parser.add_argument(
        "--columns",
        type=names(all_columns),
        default=list(all_columns),
        help=f"some of: {','.join(all_columns)}",
    )
    parser.add_argument(
        "--scale",
        type=positive(float),
        default=1.0,
        help="multiply every count (jobs, posts, users, samples) by this; 0.05 for a quick look",
    )
    parser.add_argument(
        "--concurrency",
        type=positive(int),
        help="WORKER_CONCURRENCY for the app, and the pool's size, outside the lesson "
        "(default: the app's own default; the pool gets one member per core)",
    )
    parser.add_argument(
        "--lesson-concurrency",
        type=positive(int),
        default=Settings.lesson_concurrency,
        help="jobs at a time in the lesson row (default %(default)s)",
    )
    parser.add_argument(
        "--lesson-delay",
        type=positive(float),
        default=Settings.lesson_delay,
        help="seconds each lesson job sleeps (default %(default)s)",
    )
    parser.add_argument(
        "--drain-seconds",
        type=positive(float),
        default=Settings.drain_seconds,
        help="stop a drain after this long, reporting the rate so far (default %(default)s)",
    )
    parser.add_argument(
        "--cap",
        type=positive(float),
        default=Settings.cap,
        help="the longest wait for one event (default %(default)s)",
    )
    parser.add_argument(
        "--postgres-url",
        default=Settings.postgres_url,
        help="a server where the bench may create (and drop) databases of its own",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a config variable for every worker, e.g. --set WORKER_PROCESSES=2 (repeatable)",
    )
    parser.add_argument(
        "--clients",
        type=positive(int),
        default=20,
        help="simulated users of the web row (default %(default)s)",
    )
    parser.add_argument(
        "--web-databases",
        type=names(list(web.DATABASES)),
        default=list(web.DATABASES),
        help=f"the web row's databases, some of: {','.join(web.DATABASES)}",
    )
    parser.add_argument(
        "--formations",
        type=formations,
        default=[web.Formation(1, 1)],
        help="the web row's web × worker processes, side by side: e.g. 1x1,2x2 (default 1x1)",
    )
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=ROOT / "bench" / "results" / "logs",
        help="where each worker's output goes",
    )
    return parser.parse_args(argv)


def run_cell(settings: Settings, row: str, column) -> tuple[dict, list[str]]:
    with Cell(settings, row, column) as cell:
        try:
            values = ROWS[row](cell)
        except Exception as error:
            lines = str(error).strip().splitlines()
            message = " / ".join(lines if len(lines) < 5 else [lines[0], "...", *lines[-3:]])
            cell.note(f"error: {type(error).__name__}: {message}")
            values = {line.name: ERROR for line in LINES if line.row == row}
    return values, cell.notes


def phases(rows: list[str]) -> list[list[str]]:
    """The rows in order, one at a time, except that parallel rows next to each other go
    together."""
    grouped: list[list[str]] = []
    for row in rows:
        if grouped and row in PARALLEL_ROWS and grouped[-1][0] in PARALLEL_ROWS:
            grouped[-1].append(row)
        else:
            grouped.append([row])
    return grouped


def interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv=None) -> int:
    args = parse_args(argv)
    for assignment in args.set:
        name, _, value = assignment.partition("=")
        EXTRA_CONFIG[name.strip()] = value
    # Stopped by SIGTERM as by Ctrl+C: every worker and Redis server started goes too.
    signal.signal(signal.SIGTERM, interrupt)
    picked = [column for name, column in columns().items() if name in args.columns]
    args.log_dir.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC)
    with tempfile.TemporaryDirectory(prefix="bench-") as work_dir:
        settings = Settings(
            log_dir=args.log_dir,
            work_dir=Path(work_dir),
            scale=args.scale,
            concurrency=args.concurrency,
            lesson_concurrency=args.lesson_concurrency,
            lesson_delay=args.lesson_delay,
            drain_seconds=args.drain_seconds,
            cap=args.cap,
            postgres_url=args.postgres_url,
        )
        try:
            results, notes = run(settings, args.rows, picked)
            if RECURRING in args.rows:
                recurring_results, recurring_notes = recurring.run(settings)
                results.update(recurring_results)
                notes += recurring_notes
            if WEB in args.rows:
                web_results, web_notes = web.run(
                    settings, args.web_databases, args.formations, args.clients
                )
                results.update(web_results)
                notes += web_notes
        finally:
            for databases, _ in settings.databases.values():
                databases.drop_all()
    report = Report(args, settings, picked, started_at, results, notes)
    print(report.text())
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report.data(), indent=2, ensure_ascii=False) + "\n")
    failed = any(v == ERROR for values in results.values() for v in values.values())
    return 1 if failed else 0


def run(settings: Settings, rows: list[str], picked: list) -> tuple[dict, list[str]]:
    """Measure ``rows`` on the ``picked`` columns: ``results[line][column]``, and the notes."""
    results: dict[str, dict] = {}
    notes: list[str] = []
    for phase in phases([name for name in ROWS if name in rows]):
        began = time.monotonic()
        print(f"{', '.join(phase)} ...", file=sys.stderr)
        cells = [(row, column) for row in phase for column in picked]
        if phase[0] in PARALLEL_ROWS:
            with ThreadPoolExecutor(len(cells)) as pool:
                futures = [pool.submit(run_cell, settings, *cell) for cell in cells]
                try:
                    outcomes = [future.result() for future in futures]
                except KeyboardInterrupt:
                    settings.stopping.set()
                    raise
        else:
            outcomes = (run_cell(settings, *cell) for cell in cells)
        for (row, column), (values, cell_notes) in zip(cells, outcomes, strict=True):
            notes.extend(cell_notes)
            for line in LINES:
                if line.name in values:
                    results.setdefault(line.name, {})[column.name] = values[line.name]
                    text = cell_text(line, values[line.name])
                    print(f"  {row} / {column.name}: {line.name} {text}", file=sys.stderr)
        print(f"{', '.join(phase)}: {time.monotonic() - began:.0f} s", file=sys.stderr)
    return results, notes


class Report:
    """The table and what it needs to be read: the machine, the commands, the notes."""

    def __init__(self, args, settings, picked, started_at, results, notes):
        self.args = args
        self.picked = picked
        self.started_at = started_at
        self.results = results
        self.notes = notes
        self.concurrency = args.concurrency or default_pool_size()
        self.titles = {column.name: column.title_for(self.concurrency) for column in picked}
        self.lesson = (
            f"{settings.count(500, args.lesson_concurrency)} × {args.lesson_delay:g} s "
            f"at {args.lesson_concurrency}"
        )

    def text(self) -> str:
        args = self.args
        workers = bool(set(args.rows) & set(ROWS))
        lines = []
        if workers:
            lines += [table(self.results, self.titles, args.rows, {"lesson": self.lesson}), ""]
        if RECURRING in args.rows:
            lines += [
                table(self.results, recurring.DATABASES, args.rows, {}, RECURRING_LINES),
                "",
            ]
        if WEB in args.rows:
            titles = web.columns(args.web_databases, args.formations)
            lines += [table(self.results, titles, args.rows, {}, WEB_LINES), ""]
        lines.append(machine_line(self.started_at))
        if workers:
            lines += [f"{self.titles[c.name]}: {c.command(self.concurrency)}" for c in self.picked]
        if workers and args.concurrency is None:
            lines.append(
                "Outside the lesson, the app's worker runs with its default WORKER_CONCURRENCY."
            )
        if "lesson" in args.rows:
            lines.append(
                f"The lesson runs the app with WORKER_CONCURRENCY={args.lesson_concurrency} "
                f"and the pool with -n {args.lesson_concurrency}."
            )
        if WEB in args.rows:
            lines.append(
                f"Web: {args.clients} simulated users (Locust) on this machine against the "
                f"Procfile's web line, {web.load_seconds(args.scale):g} s of mixed load, then "
                f"half that of / alone (pages kept for visitors not signed in, then each made), "
                f"and of hello; {web.gunicorn_settings()}."
            )
        lines += [f"- {note}" for note in self.notes]
        lines.append(f"Worker logs: {args.log_dir}")
        return "\n".join(lines)

    def data(self) -> dict:
        ignored = ("json", "log_dir")
        return {
            "started_at": self.started_at.isoformat(),
            "machine": machine(),
            "settings": {
                **{k: v for k, v in vars(self.args).items() if k not in ignored},
                "formations": [formation.name for formation in self.args.formations],
            },
            "columns": {
                c.name: {"title": self.titles[c.name], "command": c.command(self.concurrency)}
                for c in self.picked
            },
            "results": {
                line: {column: json_value(value) for column, value in values.items()}
                for line, values in self.results.items()
            },
            "notes": self.notes,
        }


def machine() -> dict:
    return {
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "python": platform.python_version(),
        "rq": rq.__version__,
        "platform": platform.platform(),
    }


def machine_line(started_at: datetime) -> str:
    info = machine()
    load = ", ".join(f"{x:.2f}" for x in info["load_average"])
    return (
        f"Started {started_at:%Y-%m-%d %H:%M} UTC; {info['cpus']} CPUs, load {load} at the end; "
        f"Python {info['python']}, RQ {info['rq']}"
    )


if __name__ == "__main__":
    sys.exit(main())
