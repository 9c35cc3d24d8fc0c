"""No input gets a server error: every route of the URL map (the dashboard's too), as a
visitor, a user and an admin, with hostile values of every kind in the path, the query
string and the forms. Any 5xx, or an exception, fails the test, naming the request.

Two parts: a fixed walk through a table of values known to hurt (huge and negative
integers, NUL and control characters, invalid UTF-8, very long and odd Unicode text, wrong
types, oversized bodies), and a property-based search (hypothesis) around it. Hypothesis is
derandomized and kept to a fixed number of examples, so a CI run is reproducible and short.
"""

from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from blog import create_app
from tests.site import SAME_ORIGIN, fill, populate, sign_in

RULES = list(create_app({"TESTING": True}).url_map.iter_rules())
ROLES = (None, "user", "admin")

INTEGERS = [
    "0",
    "-1",
    "2147483648",  # one past PostgreSQL's INTEGER
    "9223372036854775808",  # one past a 64-bit integer (SQLite, Redis)
    "9" * 40,
    "1e9",
    "1.5",
    "0x1f",
    " 1",
    "٣",  # an Arabic-Indic digit: \d matches it, int() reads it
    "１",  # a full-width digit
]
TEXTS = [
    "",
    "\x00",
    "a\x00b",
    "\x01\x08\x1b[31m\x7f",
    "\r\n\t",
    "a" * 5000,
    "\u202eevil",  # right-to-left override
    "\ufeff",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "🏳️‍🌈",
    "e\u0301",
    "' OR 1=1 --",
    "<script>alert(1)</script>",
    "../../etc/passwd",
    "%00",
    "[]",
    "{}",
    "null",
    "NaN",
]
INVALID_UTF8 = [b"\xff\xfe", b"\xc0\xaf", b"\xed\xa0\x80", b"\x80abc"]
HOSTILE = [*INTEGERS, *TEXTS, *INVALID_UTF8]

# A form each POST route takes, filled in right; the fuzz spoils one field at a time.
POST_DATA = {"title": "A title", "body": "Some words.", "tags": "fuzz", "tag_inline": "0"}
FORMS = {
    "auth.signup": {
        "email": "fuzz@example.com",
        "password": "correct horse",
        "confirm": "correct horse",
    },
    "auth.login": {"email": "ada@example.com", "password": "not it", "remember": "y", "next": "/"},
    "posts.new": POST_DATA,
    "posts.edit": POST_DATA,
    "operations.quiet": {"process": "web-1.4242.a1b2c3"},
    "operations.requeue_dead": {"job": "default:sample-job", "all": "0"},
    "operations.delete_dead": {"job": "default:sample-job", "all": "0"},
    "operations.run_recurring": {"name": "workers.maintenance.refresh_stats"},
}
TOO_LARGE = b"x=" + b"y" * (2 * 1024 * 1024)


@pytest.fixture
def site(app):
    # Limits would answer 429 before the code under test runs.
    app.config.update(
        SIGNUP_RATE_LIMIT="100000 per hour",
        LOGIN_RATE_LIMIT_PER_ADDRESS="100000 per hour",
        LOGIN_RATE_LIMIT_PER_ACCOUNT="100000 per hour",
    )
    return populate(app)


class Fuzzer:
    """Sends requests as a visitor, a user or an admin, and keeps the ones that failed."""

    def __init__(self, app, site):
        self.site = site
        self.clients = {role: app.test_client() for role in ROLES}
        for role, client in self.clients.items():
            sign_in(client, site["users"].get(role))
        self.failures: dict[str, str] = {}
        self.sent = 0

    def send(self, role, method, url, **kwargs):
        client = self.clients[role]
        if role and url.startswith("/logout"):  # stay signed in for the next request
            sign_in(client, self.site["users"][role])
        self.sent += 1
        request = f"{method} {url[:200]!r} as {role or 'visitor'} {str(kwargs)[:200]}"
        try:
            with client.open(url, method=method, headers=SAME_ORIGIN, **kwargs) as response:
                if response.status_code >= 500:
                    self.failures[request] = str(response.status_code)
        except Exception as error:  # the app raised: with TESTING on, Flask hands it over
            self.failures[request] = repr(error)[:300]

    def form(self, role, rule, fields: list[tuple[str, str | bytes]]):
        body = urlencode(fields).encode()
        content_type = "application/x-www-form-urlencoded"
        self.send(role, "POST", fill(rule, self.site), data=body, content_type=content_type)


def methods_of(rule) -> list[str]:
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def role_for(rule, n: int):
    """Who sends the ``n``-th request to ``rule``: each role in turn; under /admin, where
    only an admin gets past the door, the admin but for every tenth request."""
    if rule.rule.startswith("/admin") and n % 10:
        return "admin"
    return ROLES[n % len(ROLES)]


def test_hostile_values_in_every_path_argument(app, site):
    fuzzer = Fuzzer(app, site)
    for rule in RULES:
        n = 0
        for argument in sorted(rule.arguments - {"filename"}):
            for value in HOSTILE:
                url = fill(rule, {**site, argument: value})
                for method in methods_of(rule):
                    fuzzer.send(role_for(rule, n), method, url)
                    n += 1
    assert fuzzer.failures == {}, f"{len(fuzzer.failures)} of {fuzzer.sent} requests failed"


def test_hostile_values_in_the_query_string(app, site):
    fuzzer = Fuzzer(app, site)
    for rule in RULES:
        if "GET" not in rule.methods:
            continue
        for n, value in enumerate(HOSTILE):
            query = urlencode({"page": value, "per_page": value, "next": value, value: value})
            fuzzer.send(role_for(rule, n), "GET", f"{fill(rule, site)}?{query}")
    assert fuzzer.failures == {}, f"{len(fuzzer.failures)} of {fuzzer.sent} requests failed"


# Who gets as far as the form's validation: signed-in users are sent away from signup and
# login, visitors to log in; a post is edited by its author, the admin.
FORM_ROLES = {"auth.signup": None, "auth.login": None, "posts.new": "user", "posts.edit": "admin"}


def test_hostile_forms(app, site):
    fuzzer = Fuzzer(app, site)
    for rule in RULES:
        if "POST" not in rule.methods:
            continue
        url, good = fill(rule, site), FORMS.get(rule.endpoint, {})
        for role in ROLES:  # the right form, from everyone
            fuzzer.form(role, rule, [*good.items()])
        # The rest from the one who gets as far as validating it.
        role = FORM_ROLES.get(rule.endpoint, "admin")
        for field in good:
            for value in HOSTILE:
                fuzzer.form(role, rule, [*{**good, field: value}.items()])
            # Wrong types: a field twice, missing, or sent as a file.
            fuzzer.form(role, rule, [*good.items(), (field, "again")])
            fuzzer.form(role, rule, [(k, v) for k, v in good.items() if k != field])
            fuzzer.send(role, "POST", url, data={**good, field: (b"contents", "name.txt")})
        fuzzer.send(role, "POST", url, json={"email": ["not", "a", "form"]})
        fuzzer.send(role, "POST", url, data=TOO_LARGE)
        raw = b"%ff%fe=%00&=&&=="
        fuzzer.send(role, "POST", url, data=raw, content_type="application/x-www-form-urlencoded")
    assert fuzzer.failures == {}, f"{len(fuzzer.failures)} of {fuzzer.sent} requests failed"


def path_value(rule, argument: str):
    """Values for one argument of ``rule``: the right kind, the wrong kind, and hostile."""
    right = st.integers().map(str) if f"int:{argument}" in rule.rule else st.text(max_size=60)
    return st.one_of(right, st.binary(max_size=20), st.sampled_from(HOSTILE))


form_value = st.one_of(st.text(max_size=300), st.binary(max_size=40), st.sampled_from(HOSTILE))


@settings(
    max_examples=150,
    derandomize=True,  # the same examples on every run: CI stays reproducible
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_property_no_request_gets_a_server_error(app, site, data):
    fuzzer = Fuzzer(app, site)
    rule = data.draw(st.sampled_from(RULES), label="rule")
    method = data.draw(st.sampled_from(methods_of(rule)), label="method")
    role = data.draw(st.sampled_from(ROLES), label="role")
    values = {
        argument: data.draw(path_value(rule, argument), label=argument)
        for argument in sorted(rule.arguments - {"filename"})
    }
    query = data.draw(st.lists(st.tuples(st.text(max_size=10), form_value), max_size=3))
    url = fill(rule, {**site, **values}) + "?" + urlencode(query)
    if method == "POST":
        fields = FORMS.get(rule.endpoint, {})
        spoiled = data.draw(st.dictionaries(st.sampled_from([*fields, "x"]), form_value))
        body = urlencode([*{**fields, **spoiled}.items()]).encode()
        fuzzer.send(role, method, url, data=body, content_type="application/x-www-form-urlencoded")
    else:
        fuzzer.send(role, method, url)
    assert fuzzer.failures == {}


def test_the_walk_reaches_the_pages_themselves(app, site):
    """The fuzz means something only if right values reach the views: check that they do."""
    client = app.test_client()
    sign_in(client, site["users"]["admin"])
    for rule in RULES:
        if methods_of(rule) == ["GET"] and rule.endpoint not in (
            "admin.index",
            "auth.login",
            "auth.signup",
            "operations.confirm_dead",  # with no job chosen, back to the list
        ):
            with client.get(fill(rule, site)) as response:
                assert response.status_code in (200, 308), quote(rule.rule)
