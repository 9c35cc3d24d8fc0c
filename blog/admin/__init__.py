"""The admin area, ``/admin``: the stats, metrics and jobs pages, the pages that act on the
jobs (operations), and the RQ dashboard, for admins only."""

from flask import Flask

from blog.admin import dashboard, jobs, metrics, operations, security, views


def init_app(app: Flask) -> None:
    security.init_app(app)
    app.register_blueprint(views.bp)
    app.register_blueprint(metrics.bp)
    app.register_blueprint(jobs.bp)
    app.register_blueprint(operations.bp)
    dashboard.init_app(app)
