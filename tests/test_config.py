import os
import re
import runpy
from pathlib import Path

import pytest
from flask import request

from blog import create_app
from blog.config import (
    EXIT_CONFIG_ERROR,
    ConfigError,
    MailServer,
    app_env,
    database_url,
    engine_options,
    from_environment,
    mail_server,
    read_settings,
    redis_url,
)

ROOT = Path(__file__).resolve().parent.parent


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


PRODUCTION = {"APP_ENV": "production", "SECRET_KEY": "s", "APP_URL": "https://blog.example.com"}


def test_production_cookies_are_secure(tmp_path):
    config = from_environment(tmp_path, PRODUCTION)
    assert config["SESSION_COOKIE_SECURE"] and config["REMEMBER_COOKIE_SECURE"]


def test_production_needs_the_sites_address_for_links_in_emails(tmp_path):
    with pytest.raises(ConfigError, match="APP_URL"):
        from_environment(tmp_path, {**PRODUCTION, "APP_URL": ""})
    with pytest.raises(ConfigError, match="APP_URL"):
        from_environment(tmp_path, {**PRODUCTION, "APP_URL": "blog.example.com"})
    assert from_environment(tmp_path, PRODUCTION)["APP_URL"] == "https://blog.example.com"


def test_development_links_point_at_the_local_server(tmp_path):
    config = from_environment(tmp_path, {"APP_ENV": "development", "PORT": "8000"})
    assert config["APP_URL"] == "http://127.0.0.1:8000"


def test_the_dev_mailbox_is_off_in_production(tmp_path):
    assert from_environment(tmp_path, {"APP_ENV": "development"})["DEV_MAILBOX"] is True
    assert from_environment(tmp_path, PRODUCTION)["DEV_MAILBOX"] is False


@pytest.mark.parametrize(
    ("url", "server"),
    [
        ("smtp://apikey:s%40cret@smtp.example.com", ("smtp.example.com", 587, "starttls")),
        ("smtp://u:p@smtp.example.com:2525", ("smtp.example.com", 2525, "starttls")),
        ("smtps://u:p@smtp.example.com", ("smtp.example.com", 465, "implicit")),
        ("smtp://127.0.0.1:1025?tls=off", ("127.0.0.1", 1025, "off")),
    ],
)
def test_mail_url_names_the_smtp_server_and_its_tls(url, server):
    assert mail_server(url)[:3] == server


def test_mail_url_password_is_percent_decoded():
    assert mail_server("smtp://apikey:s%40cret@smtp.example.com") == MailServer(
        "smtp.example.com", 587, "starttls", "apikey", "s@cret"
    )


@pytest.mark.parametrize(
    "url",
    [
        "smtp.example.com",
        "http://smtp.example.com",
        "smtp://",
        "smtp://smtp.example.com?tls=no",
        "smtps://smtp.example.com?tls=off",
        "smtp://smtp.example.com?timeout=3",
    ],
)
def test_a_wrong_mail_url_stops_the_app_at_start(tmp_path, url):
    with pytest.raises(ConfigError, match="MAIL_URL"):
        from_environment(tmp_path, {"APP_ENV": "development", "MAIL_URL": url})


def test_a_heroku_dyno_defaults_to_production():
    assert app_env({"DYNO": "web.1"}) == "production"
    assert app_env({}) == "development"


def test_unknown_environment_is_an_error():
    with pytest.raises(ConfigError, match="APP_ENV"):
        app_env({"APP_ENV": "staging"})


def test_create_app_takes_overrides(tmp_path: Path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db", "POSTS_PER_PAGE": 3})
    assert app.config["POSTS_PER_PAGE"] == 3


def test_tagging_mode_must_be_known(tmp_path):
    with pytest.raises(ConfigError, match="TAGGING_MODE"):
        from_environment(tmp_path, {"APP_ENV": "testing", "TAGGING_MODE": "sometimes"})


def test_redis_url_from_a_provider_variable(tmp_path):
    environ = {"REDIS_PROVIDER": "REDISCLOUD_URL", "REDISCLOUD_URL": "redis://h:1/2"}
    assert redis_url(environ, tmp_path).startswith("redis://h:1/2?health_check_interval=30")
    with pytest.raises(ConfigError, match="REDISCLOUD_URL is not set"):
        redis_url({"REDIS_PROVIDER": "REDISCLOUD_URL"}, tmp_path)


def test_redis_url_carries_the_connection_options(tmp_path):
    url = redis_url({"REDIS_URL": "redis://h:6379/0"}, tmp_path)
    assert url == (
        "redis://h:6379/0?health_check_interval=30&socket_connect_timeout=5&socket_timeout=5"
    )


def test_self_signed_tls_redis_can_skip_verification(tmp_path):
    environ = {"REDIS_URL": "rediss://:pw@h:6380/0", "REDIS_SSL_CERT_REQS": "none"}
    url = redis_url(environ, tmp_path)
    assert "ssl_cert_reqs=none" in url and "ssl_check_hostname=false" in url
    plain = redis_url({"REDIS_URL": "rediss://h:6380/0"}, tmp_path)
    assert "ssl_cert_reqs" not in plain
    with pytest.raises(ConfigError, match="REDIS_SSL_CERT_REQS"):
        redis_url({**environ, "REDIS_SSL_CERT_REQS": "maybe"}, tmp_path)


def test_make_runs_redis_url_file_is_used_when_nothing_is_set(tmp_path):
    (tmp_path / "redis_url").write_text("redis://127.0.0.1:41000/0\n")
    assert redis_url({}, tmp_path).startswith("redis://127.0.0.1:41000/0?")
    assert redis_url({"REDIS_URL": "redis://elsewhere:1/0"}, tmp_path).startswith(
        "redis://elsewhere"
    )


def test_redis_url_scheme_is_checked(tmp_path):
    with pytest.raises(ConfigError, match="REDIS_URL must start with"):
        redis_url({"REDIS_URL": "http://h/"}, tmp_path)


@pytest.mark.parametrize(("value", "off"), [("1", True), ("true", True), ("", False), ("0", False)])
def test_rq_dashboard_delete_can_be_turned_off_from_the_environment(tmp_path, value, off):
    environ = {"APP_ENV": "testing", "RQ_DASHBOARD_DISABLE_DELETE": value}
    assert from_environment(tmp_path, environ)["RQ_DASHBOARD_DISABLE_DELETE"] is off


def test_each_process_holds_a_small_bounded_pool_of_checked_connections():
    options = engine_options("postgresql+psycopg2://h/d", {})
    assert (options["pool_size"], options["max_overflow"]) == (2, 0)
    assert options["pool_pre_ping"]
    assert options["connect_args"] == {"connect_timeout": 5}
    assert (
        engine_options("postgresql+psycopg2://h/d", {"DATABASE_POOL_SIZE": "4"})["pool_size"] == 4
    )


def test_production_trusts_one_proxy_the_platforms_router(tmp_path):
    assert from_environment(tmp_path, PRODUCTION)["TRUSTED_PROXIES"] == 1
    assert (
        from_environment(tmp_path, {**PRODUCTION, "TRUSTED_PROXIES": "2"})["TRUSTED_PROXIES"] == 2
    )
    assert from_environment(tmp_path, {"APP_ENV": "development"})["TRUSTED_PROXIES"] == 0
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES"):
        from_environment(tmp_path, {**PRODUCTION, "TRUSTED_PROXIES": "-1"})


@pytest.mark.parametrize(
    ("proxies", "seen"), [(1, ("https", "203.0.113.7")), (0, ("http", "127.0.0.1"))]
)
def test_the_routers_forwarded_headers_are_believed_only_behind_it(make_app, proxies, seen):
    app = make_app(TRUSTED_PROXIES=proxies)

    @app.get("/seen")
    def seen_by_the_app():
        return {"scheme": request.scheme, "address": request.remote_addr}

    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7"}
    response = app.test_client().get(
        "/seen", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"}
    )
    assert (response.json["scheme"], response.json["address"]) == seen


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("TAGGER_LATENCY", "abc", "TAGGER_LATENCY must be a number, not 'abc'"),
        ("TAGGER_FAILURE_RATE", "2", "TAGGER_FAILURE_RATE must be between 0 and 1"),
        ("TAGGER_FAILURE_RATE", "nan", "TAGGER_FAILURE_RATE must be between 0 and 1"),
        ("STRANDED_AFTER_SECONDS", "1.5", "STRANDED_AFTER_SECONDS must be an integer"),
        ("MAIL_LATENCY", "31", "MAIL_LATENCY must be between 0 and 30"),
        ("MAIL_LATENCY", "-1", "MAIL_LATENCY must be between 0 and 30"),
        ("POSTS_PER_PAGE", "0", "POSTS_PER_PAGE must be between 1 and 50"),
        ("WEB_CONCURRENCY", "0", "WEB_CONCURRENCY must be between 1 and 64, not '0'"),
        ("WEB_THREADS", "100", "WEB_THREADS must be between 1 and 32, not '100'"),
        ("WORKER_SHUTDOWN_GRACE", "30", "WORKER_SHUTDOWN_GRACE must be between 0 and 20"),
        ("JOBS_MODE", "celery", "JOBS_MODE must be one of 'redis', 'inline' or 'fake'"),
        ("RQ_DASHBOARD_DISABLE_DELETE", "maybe", "must be 1, true, yes or on, or 0, false"),
    ],
)
def test_a_bad_number_names_its_variable(tmp_path, name, value, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        from_environment(tmp_path, {"APP_ENV": "testing", name: value})


def test_a_bad_url_is_reported_without_its_password(tmp_path):
    with pytest.raises(ConfigError) as error:
        from_environment(tmp_path, {"APP_ENV": "testing", "REDIS_URL": "http://u:s3cret@h/"})
    assert "s3cret" not in str(error.value) and "***" in str(error.value)


def test_every_bad_variable_is_named_at_once(tmp_path):
    environ = {"APP_ENV": "testing", "PORT": "http", "TAGGER_LATENCY": "-1"}
    with pytest.raises(ConfigError) as error:
        from_environment(tmp_path, environ)
    assert str(error.value) == (
        "PORT must be an integer, not 'http'; TAGGER_LATENCY must be between 0 and 60, not '-1'"
    )


def test_a_url_in_the_wrong_variable_is_reported_without_its_password():
    with pytest.raises(ConfigError) as error:
        read_settings({"PORT": "redis://:s3cret@redis.example:6379"})
    assert "s3cret" not in str(error.value) and "***" in str(error.value)


def test_gunicorn_reads_its_port_and_workers_through_the_config(monkeypatch, capsys):
    monkeypatch.setenv("PORT", "8123")
    monkeypatch.setenv("WEB_CONCURRENCY", "3")
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (settings["bind"], settings["workers"]) == ("127.0.0.1:8123", 3)
    monkeypatch.setenv("WEB_CONCURRENCY", "lots")
    with pytest.raises(SystemExit) as stopped:
        runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert stopped.value.code == EXIT_CONFIG_ERROR
    assert capsys.readouterr().err == "web: WEB_CONCURRENCY must be an integer, not 'lots'\n"


def test_gunicorn_runs_threads_with_a_connection_each_when_asked(monkeypatch):
    monkeypatch.delenv("WEB_THREADS", raising=False)
    monkeypatch.setenv("DATABASE_POOL_SIZE", "2")
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (settings["worker_class"], settings["threads"]) == ("sync", 1)
    assert os.environ["DATABASE_POOL_SIZE"] == "2"
    monkeypatch.setenv("WEB_THREADS", "4")
    settings = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    assert (settings["worker_class"], settings["threads"]) == ("gthread", 4)
    # The worker processes it forks read their pool's size from the environment.
    assert os.environ["DATABASE_POOL_SIZE"] == "4"


@pytest.mark.parametrize(
    "name", ["SIGNUP_RATE_LIMIT", "LOGIN_RATE_LIMIT_PER_ADDRESS", "LOGIN_RATE_LIMIT_PER_ACCOUNT"]
)
def test_a_rate_limit_that_does_not_parse_stops_the_app_at_start(tmp_path, name):
    with pytest.raises(ConfigError, match=f"{name} must be like '5 per hour'"):
        from_environment(tmp_path, {name: "lots"})
    assert (
        from_environment(tmp_path, {name: "3/minute; 20 per day"})[name] == "3/minute; 20 per day"
    )


@pytest.mark.parametrize(
    ("value", "log_format"), [("", "text"), ("JSON", "json"), ("text", "text")]
)
def test_log_format_is_text_unless_json_is_asked_for(tmp_path, value, log_format):
    environ = {"APP_ENV": "testing", "LOG_FORMAT": value}
    assert from_environment(tmp_path, environ)["LOG_FORMAT"] == log_format


def test_a_wrong_log_format_stops_the_app_at_start(tmp_path):
    with pytest.raises(ConfigError, match="LOG_FORMAT must be one of 'text' or 'json'"):
        from_environment(tmp_path, {"APP_ENV": "testing", "LOG_FORMAT": "logfmt"})


@pytest.mark.parametrize("url", ["127.0.0.1:4318", "grpc://collector:4317", "http://"])
def test_a_wrong_otlp_endpoint_stops_the_app_at_start(tmp_path, url):
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT must be an http"):
        from_environment(tmp_path, {"APP_ENV": "testing", "OTEL_EXPORTER_OTLP_ENDPOINT": url})


def test_tracing_is_off_unless_an_otlp_endpoint_is_set(tmp_path):
    config = from_environment(tmp_path, {"APP_ENV": "testing"})
    assert config["OTEL_EXPORTER_OTLP_ENDPOINT"] == ""
    environ = {"APP_ENV": "testing", "OTEL_EXPORTER_OTLP_ENDPOINT": "https://otlp.example.com"}
    assert from_environment(tmp_path, environ)["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("https")


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("DEAD_JOBS_MAX", "0", "DEAD_JOBS_MAX must be between 1 and 10000000, not '0'"),
        ("DEAD_JOBS_MAX", "lots", "DEAD_JOBS_MAX must be an integer, not 'lots'"),
        ("DEAD_JOBS_MAX_AGE", "0", "DEAD_JOBS_MAX_AGE must be between 1 and 3650, not '0'"),
    ],
)
def test_a_bad_dead_job_cap_is_refused_naming_it(name, value, error):
    with pytest.raises(ConfigError) as raised:
        read_settings({name: value})
    assert str(raised.value) == error


def test_the_dead_job_cap_defaults_to_sidekiqs(tmp_path):
    config = from_environment(tmp_path, {"APP_ENV": "testing"})
    assert (config["DEAD_JOBS_MAX"], config["DEAD_JOBS_MAX_AGE"]) == (10_000, 180)
