"""How the admin area is locked down.

- Everything under ``/admin`` is for admins, whatever the method and even where no route
  matches: a visitor is sent to log in, a signed-in user who is not an admin gets a 403.
- A request that may change something (anything but GET, HEAD and OPTIONS) must come from a
  page of this site, as the browser's ``Sec-Fetch-Site`` or ``Origin`` header says; a
  cross-site one gets a 403. This is what stops cross-site request forgery on the RQ
  dashboard, whose buttons send no CSRF form token (see ``blog.admin.dashboard``).
- Every admin page gets a Content-Security-Policy.
"""

import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, abort, g, request
from flask_login import current_user

from blog.extensions import login_manager

PREFIX = "/admin"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")

# Our own admin pages load only this site's scripts and styles, and no inline code.
STRICT_POLICY = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def is_admin_path(path: str) -> bool:
    return path == PREFIX or path.startswith(PREFIX + "/")


def from_this_site() -> bool:
    """Did a page of this site send the request? Every browser in use sends ``Origin`` with a
    POST, and the recent ones ``Sec-Fetch-Site`` too; a request with neither is refused.

    ``Origin`` is compared with the host only, as the app may sit behind a proxy that ends TLS.
    """
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None:
        return site == "same-origin"
    origin = request.headers.get("Origin")
    return origin is not None and urlsplit(origin).netloc == request.host


def admins_only():
    if not is_admin_path(request.path):
        return None
    if not current_user.is_authenticated:
        return login_manager.unauthorized()  # to /login?next=...
    if not current_user.is_admin:
        abort(403)
    if request.method not in SAFE_METHODS and not from_this_site():
        abort(403)
    return None


def csp_nonce() -> str:
    """A fresh random value per response, for the one inline script a page may run."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def add_content_security_policy(response: Response) -> Response:
    if is_admin_path(request.path):
        response.headers.setdefault("Content-Security-Policy", STRICT_POLICY)
    return response


def init_app(app: Flask) -> None:
    app.before_request(admins_only)
    app.after_request(add_content_security_policy)
    app.add_template_global(csp_nonce)
