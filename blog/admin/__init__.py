"""The admin area, ``/admin``: the stats and metrics pages and the RQ dashboard, for admins
only."""

from flask import Flask

from blog.admin import dashboard, metrics, security, views


def init_app(app: Flask) -> None:
    security.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(metrics.bp)
    dashboard.init_app(app)
