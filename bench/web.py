"""The web rows (``--rows web``): the Procfile's ``web`` line under load, with its worker.

For each database, and each formation (``--formations 1x1,2x2``: web processes × worker
processes), the bench makes an empty database, starts a Redis server of its own, then the
Procfile's ``web`` line (which migrates the database, then starts gunicorn) once per web
process, each on a port of its own, and its ``worker`` line once per worker process, in the
environment a dyno gets. Then ``bench.web_users`` (Locust) runs, in a process of its own,
on the same machine:

- **mixed**: ``--clients`` writers sign up and log in, then each writes a post and reads a
  page (the front page, or the post it wrote) in turn, as fast as the answers come;
- the posts written must all be tagged by the worker: how many were still waiting when the
  load stopped, and how long the rest took;
- **/ alone**: as many visitors read the front page and nothing else, signed in to nothing,
  so that the web processes send the pages they keep for such visitors (``blog.page_cache``);
  then again with ``PAGE_CACHE_SECONDS=0``, every page made for its visit;
- **hello**: the same visitors against a bare Flask app under the same gunicorn settings
  (``bench.hello``): the ceiling that gunicorn and the machine allow.

With two web processes the users are shared out between them, as a platform's router does.
"""

import json
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import sqlalchemy as sa
from redis import Redis
from rq import Worker

from bench.databases import PostgresDatabases, SQLiteDatabases
from bench.processes import EXTRA_CONFIG, ROOT, WorkerProcess, procfile_command, worker_env
from bench.report import ERROR, WEB_LINES, cell_text
from blog.config import read_settings
from devtools.embedded_redis import EmbeddedRedis, free_port

DATABASES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
WEB_SETTINGS = ("WEB_CONCURRENCY", "DATABASE_POOL_SIZE")
HELLO = "exec gunicorn --config gunicorn.conf.py bench.hello:app"
# The kinds of request of the mixed load, as bench.web_users names them, and in the table.
KINDS = {"create": "create", "read /": "index", "read post": "post"}


@dataclass(frozen=True)
class Formation:
    """How many processes of each kind run side by side: ``2x2`` is two web, two worker."""

    web: int
    workers: int

    @classmethod
    def parse(cls, text: str) -> "Formation":
        web, _, workers = text.partition("x")
        formation = cls(int(web), int(workers))
        if formation.web < 1 or formation.workers < 1:
            raise ValueError(text)
        return formation

    @property
    def name(self) -> str:
        return f"{self.web}x{self.workers}"


def load_seconds(scale: float) -> float:
    return max(3.0, 30 * scale)


def gunicorn_settings() -> str:
    """The web processes' settings as gunicorn.conf.py reads them (``--set`` changes them)."""
    settings = read_settings(EXTRA_CONFIG)
    return ", ".join(f"{name}={getattr(settings, name)}" for name in WEB_SETTINGS)


def columns(databases: list[str], formations: list[Formation]) -> dict[str, str]:
    """Column name → title: one column per database and formation."""
    titled = {}
    for kind in databases:
        for formation in formations:
            title = DATABASES[kind]
            if formations != [Formation(1, 1)]:
                title += f", {formation.web} web + {formation.workers} worker"
            titled[f"{kind}-{formation.name}"] = title
    return titled


def run(settings, databases: list[str], formations: list[Formation], clients: int):
    """Every column: ``results[line][column]``, and the notes."""
    results: dict[str, dict] = {}
    notes: list[str] = []
    seconds = load_seconds(settings.scale)
    for kind in databases:
        for formation in formations:
            column = f"{kind}-{formation.name}"
            print(f"web / {column} ...", file=sys.stderr)
            began = time.monotonic()
            try:
                values, cell_notes = measure(settings, kind, formation, clients, seconds)
            except Exception as error:
                lines = str(error).strip().splitlines()
                message = " / ".join(lines if len(lines) < 5 else [lines[0], "...", *lines[-3:]])
                cell_notes = [f"error: {type(error).__name__}: {message}"]
                values = dict.fromkeys((line.name for line in WEB_LINES), ERROR)
            notes += [f"{column}, web: {note}" for note in cell_notes]
            for line in WEB_LINES:
                results.setdefault(line.name, {})[column] = values.get(line.name)
                text = cell_text(line, values.get(line.name))
                print(f"  web / {column}: {line.name} {text}", file=sys.stderr)
            print(f"web / {column}: {time.monotonic() - began:.0f} s", file=sys.stderr)
    return results, notes


class Site:
    """The processes of one column: Redis, ``formation.web`` web processes and
    ``formation.workers`` worker processes, on one database."""

    def __init__(self, settings, kind: str, formation: Formation):
        self.settings = settings
        self.kind = kind
        self.formation = formation
        self.processes: list[WorkerProcess] = []
        self.log_path = settings.log_dir / f"web-{kind}-{formation.name}.log"

    def __enter__(self) -> "Site":
        self.log_path.write_text("")
        if self.kind == "sqlite":
            self.databases = SQLiteDatabases(self.settings.work_dir)
        else:
            self.databases = PostgresDatabases(self.settings.postgres_url)
        self.redis_server = EmbeddedRedis().start()
        self.redis = Redis.from_url(self.redis_server.url)
        self.database_url = self.databases.create(f"web_{self.formation.name}")
        self.engine = sa.create_engine(self.database_url)  # to see what the worker did
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
        self.engine.dispose()
        self.redis.close()
        self.redis_server.stop()
        self.databases.drop_all()

    def env(self, **config) -> dict:
        return worker_env(self.redis_server.url, self.database_url, **config)

    def start_web(self, command: str, **config) -> list[str]:
        """``command`` once per web process, with ``config`` added to its environment; their
        base URLs, once each answers."""
        hosts = []
        self.web_processes = []
        for _ in range(self.formation.web):
            port = free_port()
            process = WorkerProcess(command, self.env(PORT=port, **config), self.log_path).start()
            self.processes.append(process)
            self.web_processes.append(process)
            hosts.append((f"http://127.0.0.1:{port}", process))
        for host, process in hosts:
            wait_answers(host, process)
        return [host for host, _ in hosts]

    def web_pids(self) -> list[int]:
        """Every process of the web processes (gunicorn's master and its workers)."""
        return [p.pid for process in self.web_processes for p in process.tree()]

    def start_workers(self) -> None:
        for _ in range(self.formation.workers):
            self.processes.append(
                WorkerProcess(procfile_command("worker"), self.env(), self.log_path).start()
            )
        deadline = time.monotonic() + 120
        while not Worker.all(self.redis):
            if time.monotonic() > deadline:
                raise TimeoutError("no worker showed up in RQ's list of workers")
            for process in self.processes:
                process.check_alive()
            time.sleep(0.2)

    def stop(self) -> None:
        for process in self.processes:
            process.kill()
        self.processes.clear()

    def untagged(self) -> int:
        return sum(count for state, count in self.tagging_states().items() if state != "done")

    def tagging_states(self) -> dict:
        """How many posts are in each tagging state (None: never marked)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT tagging_state, count(*) FROM posts GROUP BY tagging_state")
            )
            return {state: count for state, count in rows}


def wait_answers(host: str, process: WorkerProcess, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(host + "/", timeout=10):
                return
        except OSError:  # not listening yet, or too busy to answer in time
            process.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{host} did not answer within {timeout:.0f} s") from None
            time.sleep(0.2)


def load(
    mode: str, hosts: list[str], clients: int, seconds: float, cap: float, watch: list[int]
) -> dict:
    """Run ``bench.web_users`` in a process of its own; what it counted."""
    command = [
        sys.executable,
        "-m",
        "bench.web_users",
        mode,
        "--clients",
        str(clients),
        "--seconds",
        str(seconds),
        "--hosts",
        ",".join(hosts),
        "--timeout",
        str(cap),
        "--watch",
        ",".join(str(pid) for pid in watch),
    ]
    done = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=seconds + 2 * cap
    )
    if done.returncode:
        raise RuntimeError(f"bench.web_users {mode} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def measure(settings, kind: str, formation: Formation, clients: int, seconds: float):
    notes: list[str] = []
    values: dict = {}
    cap = settings.cap
    with Site(settings, kind, formation) as site:
        hosts = site.start_web(procfile_command("web"))
        site.start_workers()
        mixed = load("mixed", hosts, clients, seconds, cap, site.web_pids())
        stopped = time.monotonic()
        values["web_untagged"] = site.untagged()
        while site.untagged() and time.monotonic() - stopped < cap:
            time.sleep(0.1)
        left = site.untagged()
        values["web_tagged_after"] = time.monotonic() - stopped if not left else None
        if left:
            notes.append(
                f"{left} posts still untagged {cap:g} s after the load: {site.tagging_states()}"
            )
        kinds = mixed["kinds"]
        values["web_total"] = sum(k["per_second"] for k in kinds.values())
        values["web_errors"] = sum(k["errors"] for k in kinds.values())
        for name, key in KINDS.items():
            figures = kinds.get(name, {})
            values[f"web_{key}_rate"] = figures.get("per_second")
            values[f"web_{key}_p50"] = figures.get("p50")
            values[f"web_{key}_p99"] = figures.get("p99")
            values[f"web_{key}_app"] = figures.get("app_p50")
            values[f"web_{key}_errors"] = figures.get("errors")
        values["web_cpu"] = mixed["cpu_ms_per_request"]
        values["web_busy"] = 100 * mixed["machine_busy"]
        for process_kind, ms in mixed["cpu_ms_by_kind"].items():
            values[f"web_machine_{process_kind}"] = ms
        notes += error_notes(mixed)

        index = load("index", hosts, clients, seconds / 2, cap, site.web_pids())
        page = index["kinds"].get("/ alone", {})
        values["web_alone"] = page.get("per_second")
        values["web_alone_p99"] = page.get("p99")
        values["web_alone_app"] = page.get("app_p50")
        values["web_alone_cpu"] = index["cpu_ms_per_request"]
        for process_kind, ms in index["cpu_ms_by_kind"].items():
            values[f"web_alone_machine_{process_kind}"] = ms
        notes += error_notes(index)
        site.stop()

        # The same visitors with every page made for them: what the page cache saves.
        hosts = site.start_web(procfile_command("web"), PAGE_CACHE_SECONDS=0)
        made = load("index", hosts, clients, seconds / 2, cap, site.web_pids())
        values["web_alone_made"] = made["kinds"].get("/ alone", {}).get("per_second")
        values["web_alone_made_cpu"] = made["cpu_ms_per_request"]
        notes += error_notes(made)
        site.stop()

        hosts = site.start_web(HELLO)
        hello = load("index", hosts, clients, seconds / 2, cap, site.web_pids())
        hello_rate = hello["kinds"].get("/ alone", {}).get("per_second")
        values["web_hello"] = hello_rate
        values["web_hello_cpu"] = hello["cpu_ms_per_request"]
        if hello_rate and values["web_create_rate"]:
            values["web_create_share"] = 100 * values["web_create_rate"] / hello_rate
        notes += error_notes(hello)
    return values, notes


def error_notes(figures: dict) -> list[str]:
    notes = [f"user error: {error}" for error in figures["user_errors"]]
    for name, kind in figures["kinds"].items():
        if kind["errors"]:
            notes.append(f"{name}: {kind['errors']} errors, e.g. {'; '.join(kind['first_errors'])}")
    return notes
