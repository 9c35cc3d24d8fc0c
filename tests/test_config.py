from pathlib import Path

import pytest

from blog import create_app
from blog.config import ConfigError, app_env, database_url, from_environment


def test_postgres_urls_are_rewritten_for_psycopg2():
    assert database_url({"DATABASE_URL": "postgres://u:p@h:5432/d"}, None) == (
        "postgresql+psycopg2://u:p@h:5432/d"
    )
    assert database_url({"DATABASE_URL": "postgresql://h/d"}, None) == "postgresql+psycopg2://h/d"
    assert database_url({"DATABASE_URL": "postgresql+psycopg2://h/d"}, None) == (
        "postgresql+psycopg2://h/d"
    )


def test_database_defaults_to_sqlite_in_the_instance_folder(tmp_path):
    assert database_url({}, tmp_path) == f"sqlite:///{tmp_path / 'blog.sqlite3'}"


def test_development_generates_and_keeps_a_secret_key(tmp_path):
    first = from_environment(tmp_path, {"APP_ENV": "development"})["SECRET_KEY"]
    again = from_environment(tmp_path, {"APP_ENV": "development"})["SECRET_KEY"]
    assert len(first) == 64 and first == again
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_production_refuses_to_start_without_a_secret_key(tmp_path):
    with pytest.raises(ConfigError, match="SECRET_KEY"):
        from_environment(tmp_path, {"APP_ENV": "production"})


def test_production_cookies_are_secure(tmp_path):
    config = from_environment(tmp_path, {"APP_ENV": "production", "SECRET_KEY": "s"})
    assert config["SESSION_COOKIE_SECURE"] and config["REMEMBER_COOKIE_SECURE"]


def test_a_heroku_dyno_defaults_to_production():
    assert app_env({"DYNO": "web.1"}) == "production"
    assert app_env({}) == "development"


def test_unknown_environment_is_an_error():
    with pytest.raises(ConfigError, match="APP_ENV"):
        app_env({"APP_ENV": "staging"})


def test_create_app_takes_overrides(tmp_path: Path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db", "POSTS_PER_PAGE": 3})
    assert app.config["POSTS_PER_PAGE"] == 3


@pytest.mark.parametrize(("value", "off"), [("1", True), ("true", True), ("", False), ("0", False)])
def test_rq_dashboard_delete_can_be_turned_off_from_the_environment(tmp_path, value, off):
    environ = {"APP_ENV": "testing", "RQ_DASHBOARD_DISABLE_DELETE": value}
    assert from_environment(tmp_path, environ)["RQ_DASHBOARD_DISABLE_DELETE"] is off
