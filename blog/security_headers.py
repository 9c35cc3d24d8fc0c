"""Security headers on every response, sent by Flask-Talisman.

- ``Content-Security-Policy``: pages load scripts, styles and images from this site only, run
  no inline script, and may not be framed (``frame-ancestors 'none'``). A view that needs
  more says so with ``with_policy`` (the RQ dashboard, the dev mailbox).
- ``X-Frame-Options: DENY`` for browsers that predate ``frame-ancestors``; together they stop
  clickjacking, a page of another site framing ours under the user's session.
- ``X-Content-Type-Options: nosniff``, and a ``Referrer-Policy`` that sends other sites the
  origin only (never a path, which may carry an id).
- ``Strict-Transport-Security`` in production, on responses to HTTPS requests (behind the
  platform's router, ``X-Forwarded-Proto`` says so): browsers then never use plain HTTP.

Talisman could also redirect HTTP to HTTPS; it does not here, as the platform's router does
that, and its health checks come over plain HTTP.
"""

from flask import Flask
from flask_talisman import Talisman

SITE_POLICY = {
    "default-src": "'self'",
    "img-src": "'self' data:",
    "object-src": "'none'",
    "base-uri": "'none'",
    "frame-ancestors": "'none'",
    "form-action": "'self'",
}


def with_policy(policy: dict, nonce_in: tuple[str, ...] = ()):
    """A view decorator: the view's pages get ``policy`` instead of the site's, with a fresh
    nonce per response in the ``nonce_in`` directives (templates print it: ``csp_nonce()``).

    It sets Talisman's per-view options, as ``@talisman(...)`` does, without needing the app's
    Talisman object where the view is defined.
    """

    def decorate(view):
        view.talisman_view_options = {
            "content_security_policy": policy,
            "content_security_policy_nonce_in": list(nonce_in),
        }
        return view

    return decorate


def init_app(app: Flask) -> None:
    """One Talisman per app: it keeps its settings and the app it serves on itself."""
    production = app.config["APP_ENV"] == "production"
    app.extensions["talisman"] = Talisman(
        app,
        content_security_policy=SITE_POLICY,
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
        strict_transport_security=production,
        force_https=False,
        # Talisman sets these cookie settings too; keep the ones blog.config chose.
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        session_cookie_samesite=app.config["SESSION_COOKIE_SAMESITE"],
    )
