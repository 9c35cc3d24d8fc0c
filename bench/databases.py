"""The databases of the auto-tag rows, and of the recurring jobs' rows.

The schema comes from ``flask db upgrade`` and the pending posts from the app's models
(``bench.seed``), once per run into a template; each worker then gets a copy of its own (a
file copy for SQLite, ``CREATE DATABASE ... TEMPLATE`` for PostgreSQL), so that every column
starts from the same posts. The recurring jobs' rows ``create`` an empty database instead, and
fill it themselves (``bench.large_blog``).
"""

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import sqlalchemy as sa

from bench.processes import BIN, ROOT, worker_env
from blog.config import database_url


def seed(url: str, posts: int, redis_url: str) -> list[int]:
    """Migrate the empty database at ``url`` and write ``posts`` pending posts; their ids."""
    migrate(url, redis_url)
    done = _run([sys.executable, "-m", "bench.seed", str(posts)], url, redis_url)
    # Its ids, a line each; the app's log lines (a warning, say) go to standard output too.
    return [int(line) for line in done.stdout.splitlines() if line.isdigit()]


def migrate(url: str, redis_url: str) -> None:
    """``flask db upgrade`` on the empty database at ``url``."""
    _run([str(BIN / "flask"), "db", "upgrade"], url, redis_url)


def _run(command: list[str], url: str, redis_url: str) -> subprocess.CompletedProcess:
    env = {**worker_env(redis_url, url), "FLASK_APP": "app.py"}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(f"{' '.join(command[-3:])} failed:\n{done.stderr[-2000:]}")
    return done


class SQLiteDatabases:
    name = "SQLite"

    def __init__(self, directory: Path):
        self.directory = directory
        self.template = directory / "template.sqlite3"
        self.created: list[Path] = []

    def prepare(self, posts: int, redis_url: str) -> list[int]:
        return seed(f"sqlite:///{self.template}", posts, redis_url)

    def create(self, name: str) -> str:
        path = self.directory / f"{name}.sqlite3"
        self.created.append(path)
        return f"sqlite:///{path}"

    def copy(self, name: str) -> str:
        path = self.directory / f"{name}.sqlite3"
        shutil.copyfile(self.template, path)
        return f"sqlite:///{path}"

    def drop_all(self) -> None:
        # The copies go with the run's temporary directory; a large database goes now.
        for path in self.created:
            for file in path.parent.glob(f"{path.name}*"):  # with its -wal and -shm files
                file.unlink()
        self.created.clear()


class PostgresDatabases:
    """Databases named ``bench_<run>_...`` on the server of ``server_url``, dropped at the end."""

    name = "PostgreSQL"

    def __init__(self, server_url: str):
        self.server = sa.make_url(database_url({"DATABASE_URL": server_url}, instance_path=None))
        self.prefix = f"bench_{uuid.uuid4().hex[:8]}"
        self.engine = sa.create_engine(self.server, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def _create(self, name: str, template: str | None = None) -> str:
        sql = f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else "")
        with self.engine.connect() as conn:
            conn.execute(sa.text(sql))
        self.created.append(name)
        return self.server.set(database=name).render_as_string(hide_password=False)

    def prepare(self, posts: int, redis_url: str) -> list[int]:
        return seed(self._create(f"{self.prefix}_template"), posts, redis_url)

    def create(self, name: str) -> str:
        return self._create(f"{self.prefix}_{name}")

    def copy(self, name: str) -> str:
        return self._create(f"{self.prefix}_{name}", template=f"{self.prefix}_template")

    def drop_all(self) -> None:
        with self.engine.connect() as conn:
            for name in reversed(self.created):
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.clear()
        self.engine.dispose()
