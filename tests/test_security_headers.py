"""Every response carries the security headers: every route of the URL map, every method."""

import re

import pytest

from blog import create_app
from tests.conftest import TEST_CONFIG
from tests.site import SAME_ORIGIN, fill, populate, sign_in

RULES = list(create_app({"TESTING": True}).url_map.iter_rules())
# Pages whose policy is loosened on purpose (see blog.admin.dashboard, blog.mailbox.views).
OWN_POLICY = ("rq_dashboard.", "mailbox.show")
INLINE_CODE = re.compile(r"<script(?![^>]*\ssrc=)|\sstyle=|\son[a-z]+=", re.IGNORECASE)


@pytest.fixture
def site(app):
    return populate(app)


def directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


def header_problems(rule, response) -> list[str]:
    """What is wrong with the security headers of ``response`` to a request for ``rule``."""
    headers = response.headers
    policy = directives(headers.get("Content-Security-Policy", "missing x"))
    expected = {
        "frame-ancestors": (policy.get("frame-ancestors"), "'none'"),
        "object-src": (policy.get("object-src"), "'none'"),
        "X-Frame-Options": (headers.get("X-Frame-Options"), "DENY"),
        "X-Content-Type-Options": (headers.get("X-Content-Type-Options"), "nosniff"),
        "Referrer-Policy": (headers.get("Referrer-Policy"), "strict-origin-when-cross-origin"),
        # Not in development, and never over plain HTTP.
        "Strict-Transport-Security": (headers.get("Strict-Transport-Security"), None),
    }
    if rule.rule.startswith("/admin"):
        expected["Cache-Control"] = (headers.get("Cache-Control"), "no-store")
    if not rule.endpoint.startswith(OWN_POLICY):
        expected["default-src"] = (policy.get("default-src"), "'self'")
        # Without them, scripts and styles fall back to default-src: this site's files only.
        expected["script-src"] = (policy.get("script-src"), None)
        expected["style-src"] = (policy.get("style-src"), None)
        if response.mimetype == "text/html":  # and nothing on the page needs more
            inline = INLINE_CODE.search(response.text)
            expected["inline code"] = (inline and inline[0], None)
    if response.status_code >= 500:
        expected["status"] = (response.status_code, "below 500")
    return [
        f"{name}: {got!r}, not {want!r}" for name, (got, want) in expected.items() if got != want
    ]


def test_every_response_of_every_route_carries_the_security_headers(app, site):
    problems = {}
    # Pages as a visitor and as the admin (who may open every one), then the requests that
    # change or delete things.
    for method, role in (("GET", None), ("GET", "admin"), ("POST", "admin")):
        for rule in RULES:
            if method not in rule.methods:
                continue
            client = app.test_client()
            sign_in(client, site["users"].get(role))
            with client.open(fill(rule, site), method=method, headers=SAME_ORIGIN) as response:
                found = header_problems(rule, response)
            if found:
                problems[f"{method} {rule.rule} as {role or 'visitor'}"] = found
    assert problems == {}


def test_error_pages_carry_them_too(client):
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


@pytest.fixture
def production_client(database_config):
    config = {**TEST_CONFIG, **database_config, "APP_ENV": "production"}
    return create_app({**config, "SESSION_COOKIE_SECURE": True}).test_client()


def test_production_sends_hsts_over_https_only(production_client):
    over_https = production_client.get("/healthz", base_url="https://blog.example.com")
    assert over_https.headers["Strict-Transport-Security"] == (
        "max-age=31556926; includeSubDomains"
    )
    over_http = production_client.get("/healthz", base_url="http://blog.example.com")
    assert "Strict-Transport-Security" not in over_http.headers


def test_the_dashboard_runs_its_one_inline_script_by_nonce(client, app, site):
    sign_in(client, site["users"]["admin"])
    response = client.get("/admin/rq/")
    script_src = directives(response.headers["Content-Security-Policy"])["script-src"]
    nonce = re.fullmatch(r"'self' 'unsafe-eval' 'nonce-([\w-]+)'", script_src)[1]
    assert response.text.count('<script type="text/javascript" nonce=') == 1
    assert f'nonce="{nonce}"' in response.text
