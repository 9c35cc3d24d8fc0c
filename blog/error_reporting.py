"""Errors to Sentry, when ``SENTRY_DSN`` is set; nothing at all when it is not.

``create_app`` calls ``init_app`` in every process that builds the app: each gunicorn worker,
the worker's supervisor (before it forks the processes that run jobs) and ``flask``
commands. Sentry's Flask integration reports the exceptions a request does not handle; its
RQ integration reports a job's exception once the job has failed for good (not the attempts
that will be retried).
"""

from flask import Flask


def init_app(app: Flask) -> None:
    dsn = app.config["SENTRY_DSN"]
    if not dsn:
        return
    # Imported only when used: the SDK and its integrations weigh 3 MB in every process.
    import sentry_sdk
    from sentry_sdk.integrations.flask import FlaskIntegration
    from sentry_sdk.integrations.rq import RqIntegration

    sentry_sdk.init(
        dsn=dsn,
        environment=app.config["APP_ENV"],
        integrations=[FlaskIntegration(), RqIntegration()],
    )
