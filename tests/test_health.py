"""``/healthz`` tells a platform or a monitor whether the database and Redis answer."""

from blog import create_app
from blog.queues import connect
from devtools.embedded_redis import free_port
from tests.support.config import TEST_CONFIG


def test_healthy_when_the_database_and_redis_answer(client):
    response = client.get("/healthz")  # no login: a platform's health check has none
    assert response.status_code == 200
    assert response.json == {"status": "ok", "database": "ok", "redis": "ok"}


def test_redis_down_is_a_503_that_names_redis(app, client):
    app.extensions["redis"] = connect(f"redis://127.0.0.1:{free_port()}/0")  # nothing there
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "failed", "database": "ok", "redis": "failed"}


def test_database_down_is_a_503_that_names_the_database(app, tmp_path):
    unreachable = f"sqlite:///{tmp_path / 'no such folder' / 'blog.sqlite3'}"
    broken = create_app({**TEST_CONFIG, "SQLALCHEMY_DATABASE_URI": unreachable})
    broken.extensions["redis"] = app.extensions["redis"]
    response = broken.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "failed", "database": "failed", "redis": "ok"}
