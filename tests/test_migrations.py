"""The committed migrations build exactly the schema the models describe, from empty."""

import uuid

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from blog import create_app
from blog.extensions import db


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
