"""The blog: a Flask application whose slow work runs in the background on RQ."""

from pathlib import Path

from flask import Flask

from blog import commands, errors, templating
from blog import config as app_config
from blog.auth.views import bp as auth_bp
from blog.extensions import csrf, db, login_manager, migrate
from blog.posts.views import bp as posts_bp

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: dict | None = None) -> Flask:
    """Build the app from the environment; ``config`` overrides any key (tests use it)."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        instance_path=str(ROOT / "instance"),
    )
    app.config.from_mapping(app_config.from_environment(Path(app.instance_path)))
    app.config.from_mapping(config or {})

    register_extensions(app)
    register_blueprints(app)
    errors.init_app(app)
    templating.init_app(app)
    commands.init_app(app)
    return app


def register_extensions(app: Flask) -> None:
    db.init_app(app)
    migrate.init_app(app, db)
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.login_message_category = "info"


def register_blueprints(app: Flask) -> None:
    app.register_blueprint(auth_bp)
    app.register_blueprint(posts_bp)
