"""The admin area, ``/admin``: the stats page and the RQ dashboard, for admins only."""

from flask import Flask

from blog.admin import dashboard, security, views


def init_app(app: Flask) -> None:
    security.init_app(app)
    app.register_blueprint(views.bp)
    dashboard.init_app(app)
