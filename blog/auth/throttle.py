"""Login throttling: two limits on failed logins, counted in Redis, that stop password
guessing without letting anyone lock a real user out.

- **Per client address** (``LOGIN_RATE_LIMIT_PER_ADDRESS``, 30 an hour): one machine cannot
  try password after password, on one account or across many.
- **Per account** (``LOGIN_RATE_LIMIT_PER_ACCOUNT``, 10 an hour): many machines together
  cannot either. Counted alone, this limit would let anyone lock a user out by failing on
  purpose; so a browser that has logged in to the account before (it keeps a signed cookie
  that says so) counts in a bucket of its own, which no one else can fill. During an attack
  the user still logs in from their own browser; only browsers new to the account wait.

Only failures count (the form sent back), so a user who logs in and out all day is never
limited. Whether an account exists changes nothing here: the limits are the same for an
address that has no account, and so is the time a failure takes (see ``blog.auth.views``).
"""

import hashlib

from flask import Response, current_app, request
from flask_limiter.util import get_remote_address
from itsdangerous import BadData, URLSafeSerializer

from blog.extensions import limiter
from blog.models import User

KNOWN_BROWSER_COOKIE = "known_browser"
KNOWN_BROWSER_MAX_AGE = 400 * 24 * 3600  # the longest browsers keep a cookie


def account_digest(email: str) -> str:
    """The account a login names, as a key: no email addresses in Redis."""
    return hashlib.sha256(User.normalise_email(email).encode()).hexdigest()[:32]


def signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.secret_key, salt=KNOWN_BROWSER_COOKIE)


def known_browser_of(digest: str) -> bool:
    """Has this browser logged in to the account ``digest`` before?"""
    try:
        return signer().loads(request.cookies.get(KNOWN_BROWSER_COOKIE, "")) == digest
    except BadData:  # none, forged, or signed with another key
        return False


def account_key() -> str:
    digest = account_digest(request.form.get("email", ""))
    return f"login-account:{digest}:{'known' if known_browser_of(digest) else 'any'}"


def remember_browser(response: Response, email: str) -> Response:
    """After a login: this browser may log in to ``email`` even while others are limited."""
    response.set_cookie(
        KNOWN_BROWSER_COOKIE,
        signer().dumps(account_digest(email)),
        max_age=KNOWN_BROWSER_MAX_AGE,
        path="/login",
        secure=current_app.config["SESSION_COOKIE_SECURE"],
        httponly=True,
        samesite="Lax",
    )
    return response


def failed(response: Response) -> bool:
    """A login that failed gets its form back (200); one that worked is redirected."""
    return response.status_code == 200


per_address = limiter.limit(
    lambda: current_app.config["LOGIN_RATE_LIMIT_PER_ADDRESS"],
    key_func=get_remote_address,
    methods=["POST"],
    deduct_when=failed,
)
per_account = limiter.limit(
    lambda: current_app.config["LOGIN_RATE_LIMIT_PER_ACCOUNT"],
    key_func=account_key,
    methods=["POST"],
    deduct_when=failed,
)
