"""Errors reach Sentry when ``SENTRY_DSN`` is set; without it, Sentry is never set up.

Nothing here talks to the network: the SDK's transport is replaced by one that keeps the
events it is given.
"""

import fakeredis
import pytest
import sentry_sdk
from sentry_sdk.transport import Transport

from blog.queues import QUEUE_NAMES, enqueue
from tests.support.worker import InProcessWorker
from workers.demo import DemoFailure, demo

DSN = "https://public-key@sentry.invalid/1"


class KeptEvents(Transport):
    def __init__(self, options):
        super().__init__(options)
        self.events = []

    def capture_envelope(self, envelope):
        self.events.extend(item.payload.json for item in envelope.items if item.type == "event")

    def exception_types(self) -> list[str]:
        return [event["exception"]["values"][-1]["type"] for event in self.events]


@pytest.fixture
def sentry(make_app):
    """The app with a DSN set, and the events its Sentry client would send."""
    app = make_app(SENTRY_DSN=DSN)
    client = sentry_sdk.get_client()
    client.transport.kill()
    client.transport = kept = KeptEvents(client.options)
    yield app, kept
    client.close()
    sentry_sdk.get_global_scope().set_client(None)


def test_without_a_dsn_sentry_is_not_set_up(make_app, monkeypatch):
    calls = []
    monkeypatch.setattr(sentry_sdk, "init", lambda *args, **kwargs: calls.append(kwargs))
    app = make_app()
    assert app.config["SENTRY_DSN"] == ""
    assert calls == []
    assert not sentry_sdk.get_client().is_active()


def test_with_a_dsn_sentry_watches_flask_and_rq(sentry):
    app, _ = sentry
    client = sentry_sdk.get_client()
    assert client.is_active()
    assert client.options["dsn"] == DSN
    assert client.options["environment"] == app.config["APP_ENV"]
    assert {"flask", "rq"} <= set(client.integrations)


def test_an_error_in_a_request_is_reported(sentry):
    app, kept = sentry
    app.config["PROPAGATE_EXCEPTIONS"] = False  # a 500 page, as in production

    @app.get("/fails")
    def fails():
        raise RuntimeError("something broke")

    assert app.test_client().get("/fails").status_code == 500
    assert kept.exception_types() == ["RuntimeError"]


def test_a_job_that_fails_for_good_is_reported(sentry):
    app, kept = sentry
    app.extensions["redis"] = connection = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    with app.app_context():
        enqueue(demo, 0, "fails", 1.0)
        InProcessWorker(list(QUEUE_NAMES), connection=connection).work(burst=True)
    assert kept.exception_types() == [DemoFailure.__name__]
