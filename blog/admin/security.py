"""How the admin area is locked down.

- Everything under ``/admin`` is for admins, whatever the method and even where no route
  matches: a visitor is sent to log in, a signed-in user who is not an admin gets a 403.
- A request that may change something (anything but GET, HEAD and OPTIONS) must come from a
  page of this site, as the browser's ``Sec-Fetch-Site`` or ``Origin`` header says; a
  cross-site one gets a 403. This is what stops cross-site request forgery on the RQ
  dashboard, whose buttons send no CSRF form token (see ``blog.admin.dashboard``).
- No admin page is kept by the browser or a proxy (``Cache-Control: no-store``): it shows
  job data and user counts, and the back button after logging out must not show them.

The Content-Security-Policy of every page, admin or not, is set in ``blog.security_headers``.
"""

from urllib.parse import urlsplit

from flask import Flask, Response, abort, request
from flask_login import current_user

from blog.extensions import login_manager

PREFIX = "/admin"
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")


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


def no_store(response: Response) -> Response:
    if is_admin_path(request.path):
        response.headers["Cache-Control"] = "no-store"
    return response


def init_app(app: Flask) -> None:
    app.before_request(admins_only)
    app.after_request(no_store)
