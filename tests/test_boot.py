"""A process started with a wrong configuration stops at once, with one line naming the
variable: no traceback, no half-started process."""

import subprocess

import pytest

from blog.config import EXIT_CONFIG_ERROR
from tests.dynos import ROOT, platform_env, procfile

BROKEN = {
    "SECRET_KEY": ({"APP_ENV": "production", "APP_URL": "https://blog.example.com"}, "SECRET_KEY"),
    "REDIS_URL": ({"APP_ENV": "development", "REDIS_URL": "http://redis.example"}, "REDIS_URL"),
    "POSTS_PER_PAGE": ({"APP_ENV": "development", "POSTS_PER_PAGE": "ten"}, "POSTS_PER_PAGE"),
    "SENTRY_DSN": ({"APP_ENV": "development", "SENTRY_DSN": "sentry.example"}, "SENTRY_DSN"),
}


def boot(command: list[str], env: dict) -> subprocess.CompletedProcess:
    """Start ``command`` as a platform would, and wait for it to stop (it should, at once)."""
    return subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("process", ["web", "worker", "clock"])
@pytest.mark.parametrize("broken", BROKEN, ids=str)
def test_a_wrong_setting_stops_the_process_with_one_line(process, broken, tmp_path):
    config, variable = BROKEN[broken]
    # An empty database URL would do, but a real path keeps a development run off instance/.
    env = platform_env(**config, PORT="1", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    result = boot(["sh", "-c", procfile()[process]], env)
    assert result.returncode == EXIT_CONFIG_ERROR
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert variable in line
    assert "Traceback" not in line


def test_gunicorn_alone_checks_the_configuration_once(tmp_path):
    env = platform_env(APP_ENV="production", APP_URL="https://blog.example.com", PORT="1")
    result = boot(["gunicorn", "--config", "gunicorn.conf.py", "app:app"], env)
    assert result.returncode == EXIT_CONFIG_ERROR
    assert result.stderr.splitlines() == [
        "web: SECRET_KEY must be set in production (e.g. `openssl rand -hex 32`)"
    ]
