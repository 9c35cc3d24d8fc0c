"""The committed migrations build exactly the schema the models describe, from empty."""

import subprocess
import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask_migrate import downgrade, upgrade

from blog import create_app
from blog.config import database_url
from blog.extensions import MIGRATION_LOCK_KEY, db
from blog.models import COUNT_TRIGGERS
from tests.dynos import BIN, ROOT, platform_env, wait_for


@pytest.fixture
def empty_database(postgres_schema, tmp_path):
    """Config for a database with nothing in it: a new SQLite file or a new schema."""
    if postgres_schema is None:
        yield {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.sqlite3'}"}
        return
    url, _ = postgres_schema
    schema = f"migrations_{uuid.uuid4().hex[:12]}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    yield {
        "SQLALCHEMY_DATABASE_URI": url,
        "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"options": f"-csearch_path={schema}"}},
    }
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


def schema_differences() -> list:
    with db.engine.connect() as conn:
        return compare_metadata(MigrationContext.configure(conn), db.metadata)


def test_migrations_create_the_models_schema_and_roll_back(empty_database):
    app = create_app({"TESTING": True, **empty_database})
    with app.app_context():
        upgrade()
        assert schema_differences() == []
        downgrade(revision="base")
        tables = set(sa.inspect(db.engine).get_table_names())
        assert tables <= {"alembic_version"}
        db.engine.dispose()


def database_triggers() -> set[tuple]:
    """Every trigger of the database: its name and all that defines it."""
    if db.engine.dialect.name == "sqlite":
        query = "SELECT name, sql FROM sqlite_master WHERE type = 'trigger'"
    else:
        query = (
            "SELECT t.tgname, pg_get_triggerdef(t.oid), p.prosrc"
            " FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid JOIN pg_class c"
            " ON c.oid = t.tgrelid WHERE NOT t.tgisinternal"
            " AND c.relnamespace = current_schema()::regnamespace"
        )
    with db.engine.connect() as conn:
        return set(conn.execute(sa.text(query)).all())


def test_the_migrations_make_the_triggers_the_models_make(empty_database):
    """The running counts' triggers are SQL beside the models, which compare_metadata cannot
    see; and a table that a later migration copies (SQLite's batch mode) loses its own."""
    app = create_app({"TESTING": True, **empty_database})
    with app.app_context():
        upgrade()
        migrated = database_triggers()
        downgrade(revision="base")
        assert database_triggers() == set()
        db.create_all()
        created = database_triggers()
        db.drop_all()
        db.engine.dispose()
    assert len(created) == len(COUNT_TRIGGERS)
    assert migrated == created


@pytest.mark.integration
def test_two_processes_migrating_at_once_migrate_the_schema_once(postgres_database):
    """Two web dynos booting together both run ``flask db upgrade``: both succeed, one
    migrates, and the other finds the schema already current."""
    url = database_url({"DATABASE_URL": postgres_database}, instance_path=None)
    env = platform_env(APP_ENV="testing", DATABASE_URL=postgres_database)
    engine = sa.create_engine(url)
    with engine.connect() as holder:
        # Hold the migrations' lock, so that both processes are surely waiting at once.
        holder.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        upgrades = [
            subprocess.Popen(
                [BIN / "flask", "db", "upgrade"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(2)
        ]
        waiting = sa.text(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
        wait_for(lambda: holder.execute(waiting).scalar() == 2, 30, "both to wait for the lock")
        holder.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        holder.commit()
    outputs = [upgrade.communicate(timeout=60)[0] for upgrade in upgrades]

    assert [upgrade.returncode for upgrade in upgrades] == [0, 0], outputs
    assert sum("Running upgrade  -> 0001" in output for output in outputs) == 1, outputs
    head = ScriptDirectory(str(ROOT / "migrations")).get_current_head()
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [(head,)]
    engine.dispose()
