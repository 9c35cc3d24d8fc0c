"""The blog: a Flask application whose slow work runs in the background on RQ."""

from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from blog import (
    bad_input,
    error_reporting,
    errors,
    logs,
    queues,
    request_metrics,
    security_headers,
    templating,
    timing,
    tracing,
)
from blog import config as app_config
from blog.extensions import csrf, db, limiter, login_manager

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None, *, migrations: bool = True) -> Flask:
    """Build the app from the environment; ``config`` overrides any key (tests use it).

    The worker builds it with ``migrations=False``: ``flask db`` is the only user of
    Flask-Migrate, and Alembic would weigh 11 MB in every worker process.
    """
    # The features are imported here, not at the top: they schedule jobs, so they import the
    # job modules, which import this package for its extensions. A worker that loads a job
    # by name (workers.tagging) before anything else would find this package half-built.
    from blog import admin, commands

    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        instance_path=str(ROOT / "instance"),
    )
    app.config.from_mapping(app_config.from_environment(Path(app.instance_path)))
    app.config.from_mapping(config or {})

    logs.init_app(app)
    bad_input.init_app(app)
    trust_proxies(app)
    error_reporting.init_app(app)
    # Before the database engine is made (Flask-SQLAlchemy makes it in init_app): the SDK
    # traces the queries of the engines made after it starts.
    tracing.init_app(app)
    register_extensions(app, migrations)
    register_blueprints(app)
    admin.init_app(app)
    errors.init_app(app)
    security_headers.init_app(app)
    templating.init_app(app)
    timing.init_app(app)
    request_metrics.init_app(app)
    commands.init_app(app)
    return app


def trust_proxies(app: Flask) -> None:
    """Behind ``TRUSTED_PROXIES`` proxies, take the client's address and scheme from the
    X-Forwarded-For and X-Forwarded-Proto headers they add; from no one else."""
    count = app.config["TRUSTED_PROXIES"]
    if count:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count)


def register_extensions(app: Flask, migrations: bool) -> None:
    db.init_app(app)
    queues.init_app(app)
    if migrations:
        from flask_migrate import Migrate

        Migrate(app, db, render_as_batch=True)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"
    limiter.init_app(app)


def register_blueprints(app: Flask) -> None:
    from blog.auth.views import bp as auth_bp
    from blog.health import bp as health_bp
    from blog.mailbox.views import bp as mailbox_bp
    from blog.posts.views import bp as posts_bp
    from blog.prometheus import bp as prometheus_bp

    app.register_blueprint(auth_bp)
    app.register_blueprint(posts_bp)
    app.register_blueprint(health_bp)
    app.register_blueprint(prometheus_bp)
    # Pages link the icon; this is for the browsers and tools that ask for it by this name.
    app.add_url_rule("/favicon.ico", "favicon", redirect_to="/static/favicon.svg")
    if app.config["DEV_MAILBOX"]:
        app.register_blueprint(mailbox_bp)
