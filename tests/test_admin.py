"""/admin: who gets in, from where, and what its pages may show."""

import json
import os
import re
import shutil
import subprocess
from datetime import timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import rq_dashboard
from rq import Worker
from rq.job import Job, JobStatus

from blog import create_app
from blog.admin import dashboard
from blog.queue_admin import clear_all
from blog.queues import get_queue
from tests.jobs import fail_with
from tests.support import html
from tests.support.worker import take_next_job
from workers.demo import demo

ROOT = Path(__file__).resolve().parent.parent
FAILED_JOB = "failed-job"
PAYLOAD = "<script>alert('owned')</script>"
SAME_ORIGIN = {"Origin": "http://localhost"}  # what a browser sends with a POST from our page
EMAILS = {"user": "ada@example.com", "admin": "root@example.com"}

# The URL map needs no database or Redis, so an app made here lists the routes to test.
ADMIN_RULES = [
    rule for rule in create_app({"TESTING": True}).url_map.iter_rules() if rule.rule[:6] == "/admin"
]
SAMPLE_VALUES = {
    "instance_number": 0,
    "queue_name": "default",
    "registry_name": "failed",
    "per_page": 8,
    "order": "asc",
    "page": 1,
    "job_id": FAILED_JOB,
    "filename": "css/main.css",
    "function_name": "tests.jobs.fail_with",  # what the failed_job fixture ran
}
REFUSED = {("rq_dashboard.requeue_all", "GET")}  # it changes things, so POST only


def url_of(rule) -> str:
    return rule.build(SAMPLE_VALUES, append_unknown=False)[1]


@pytest.fixture
def failed_job(app, run_jobs) -> str:
    """A failed job whose argument and error message carry a script.

    The app's own enqueue helpers refuse such text; this goes round them, as an exception
    message that quotes user input would.
    """
    with app.app_context():
        get_queue("default").enqueue(fail_with, PAYLOAD, job_id=FAILED_JOB)
    run_jobs()
    return FAILED_JOB


@pytest.fixture
def as_admin(auth, admin_id):
    auth.login(EMAILS["admin"])


@pytest.fixture
def worker_on_failed_job(app, failed_job):
    """A worker whose name carries the script, with the failed job as its current job: RQ
    finds a worker's job through the execution it records for it."""
    with app.app_context():
        connection = app.extensions["redis"]
        worker = Worker([get_queue("default")], connection=connection, name=PAYLOAD)
        worker.register_birth()
        worker.prepare_execution(Job.fetch(failed_job, connection=connection))


def status_of(client, method: str, url: str, **kwargs) -> int:
    with client.open(url, method=method, **kwargs) as response:
        return response.status_code


def job_status(app, job_id: str) -> JobStatus:
    with app.app_context():
        return Job.fetch(job_id, connection=app.extensions["redis"]).get_status()


def expected_status(rule, role: str, method: str) -> int:
    if role == "anonymous":
        return 302
    if role == "user":
        return 403
    if method not in rule.methods or (rule.endpoint, method) in REFUSED:
        return 405
    return 200


@pytest.mark.parametrize("role", ["anonymous", "user", "admin"])
@pytest.mark.parametrize("rule", ADMIN_RULES, ids=lambda rule: rule.rule)
def test_every_admin_route_for_every_role_and_method(
    rule, role, app, client, auth, author_id, admin_id, failed_job
):
    with app.app_context():
        get_queue("default").enqueue(demo, 0, "waiting")  # rq-dashboard cannot compact nothing
    if role != "anonymous":
        auth.login(EMAILS[role])
    url = url_of(rule)
    follow = role == "admin"  # through the dashboard's redirects, /admin/rq/0/ to /admin/rq/
    statuses = {
        method: status_of(client, method, url, headers=SAME_ORIGIN, follow_redirects=follow)
        for method in ("GET", "POST")
    }
    assert statuses == {method: expected_status(rule, role, method) for method in statuses}


def test_a_visitor_is_sent_to_log_in_and_back(client):
    response = client.post("/admin/rq/queue/default/compact", headers=SAME_ORIGIN)
    location = urlsplit(response.location)
    assert location.path == "/login"
    assert parse_qs(location.query)["next"] == ["/admin/rq/queue/default/compact"]


def test_paths_under_admin_that_match_no_route_are_guarded_too(client, auth, author_id):
    assert client.get("/admin/nothing-here").status_code == 302
    auth.login()
    assert client.get("/admin/nothing-here").status_code == 403


def test_two_apps_in_one_process_both_mount_the_dashboard(app, database_config):
    second = create_app({"TESTING": True, **database_config})
    assert second.url_map.bind("localhost").match("/admin/rq/") == (
        "rq_dashboard.queues_overview",
        {"instance_number": 0},
    )
    assert rq_dashboard.blueprint.name in app.blueprints
    assert rq_dashboard.blueprint.name in second.blueprints


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Sec-Fetch-Site": "cross-site", "Origin": "http://localhost"},
    ],
    ids=["no-origin", "other-origin", "null-origin", "cross-site", "same-site", "fetch-wins"],
)
def test_a_cross_site_post_gets_403_and_changes_nothing(app, client, as_admin, failed_job, headers):
    for url in (
        f"/admin/rq/job/{failed_job}/requeue",
        f"/admin/rq/job/{failed_job}/delete",
        "/admin/rq/requeue/default",
        "/admin/rq/queue/default/failed/empty",
        "/admin/jobs/scheduled",
        f"/admin/jobs/{failed_job}/edit",
    ):
        assert client.post(url, headers=headers).status_code == 403, url
    assert job_status(app, failed_job) == JobStatus.FAILED


@pytest.mark.parametrize("headers", [SAME_ORIGIN, {"Sec-Fetch-Site": "same-origin"}])
def test_a_post_from_the_dashboard_itself_requeues(app, client, as_admin, failed_job, headers):
    response = client.post(f"/admin/rq/job/{failed_job}/requeue", headers=headers)
    assert response.get_json() == {"status": "OK"}
    assert job_status(app, failed_job) == JobStatus.QUEUED


def test_requeue_all_refuses_get(app, client, as_admin, failed_job):
    response = client.get("/admin/rq/requeue/default", headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 405
    assert job_status(app, failed_job) == JobStatus.FAILED


def test_the_dashboard_posts_work_with_csrf_protection_on(app, client, admin_id, failed_job):
    """The dashboard sends no form token: it is exempt, and the origin check stands in."""
    app.config["WTF_CSRF_ENABLED"] = True
    with client.session_transaction() as session:
        session["_user_id"] = str(admin_id)
    response = client.post(f"/admin/rq/job/{failed_job}/requeue", headers=SAME_ORIGIN)
    assert response.get_json() == {"status": "OK"}
    assert client.post("/logout", headers=SAME_ORIGIN).status_code == 400  # the rest still checks


def test_disable_delete_keeps_jobs_and_hides_the_buttons(app, client, as_admin, failed_job):
    app.config["RQ_DASHBOARD_DISABLE_DELETE"] = True
    response = client.post(f"/admin/rq/job/{failed_job}/delete", headers=SAME_ORIGIN)
    assert response.get_json() == {"status": "DISABLED"}
    assert job_status(app, failed_job) == JobStatus.FAILED
    page = client.get(f"/admin/rq/0/view/job/{failed_job}").text
    assert 'id="delete-job-btn"' not in page
    assert 'id="requeue-job-btn"' in page


def test_the_dashboard_lists_the_four_queues_even_when_redis_has_never_seen_them(client, as_admin):
    queues = client.get("/admin/rq/0/data/queues.json").get_json()["queues"]
    assert [q["name"] for q in queues] == ["urgent", "mailers", "default", "low"]
    assert queues[0]["count"] == 0
    assert queues[0]["failed_url"] == "/admin/rq/0/view/jobs/urgent/failed/8/asc/1"


@pytest.mark.parametrize(
    ("registry", "words", "button"),
    [
        ("queued", "waiting for a worker", "Empty queue"),
        ("failed", "that failed for good", "Delete all failed"),
        ("finished", "that finished", "Delete all finished"),
    ],
)
def test_each_job_list_says_what_it_holds(client, as_admin, registry, words, button):
    page = client.get(f"/admin/rq/0/view/jobs/low/{registry}/8/asc/1").text
    assert f"The jobs of queue <strong>low</strong> {words}" in page
    assert f">{button}</button>" in page
    assert "all the queued jobs" not in page


def test_dashboard_pages_link_back_and_have_no_style_attributes(client, as_admin, failed_job):
    for url in (
        "/admin/rq/",
        "/admin/rq/0/view/jobs/default/failed/8/asc/1",
        f"/admin/rq/0/view/job/{failed_job}",
        "/admin/rq/0/view/workers",
    ):
        page = client.get(url).text
        assert 'href="/admin/stats"' in page, url
        assert 'href="/"' in page, url
        assert "style=" not in page, url
        assert 'src="/static/dashboard.js"' in page, url


@pytest.mark.parametrize(
    "url",
    [
        "/admin/rq/0/view/job/no-such-job",
        "/admin/rq/0/data/job/no-such-job.json",
        "/admin/rq/1/view/queues",  # the app has one Redis: instance 0
        "/admin/rq/0/view/jobs/made-up/queued/8/asc/1",
        "/admin/rq/0/view/jobs/');alert(1);('/queued/8/asc/1",
        "/admin/rq/0/data/jobs/default/failed/abc/asc/1.json",
        "/admin/rq/0/data/jobs/default/nope/8/asc/1.json",
        "/admin/rq/0/data/jobs/default/failed/8/asc/x.json",
        # ids and paging values RQ or Redis would refuse
        "/admin/rq/0/view/job/not%20an%20id",
        "/admin/rq/0/data/job/a%3Ab.json",
        "/admin/rq/0/data/job/a.b.json",
        "/admin/rq/0/view/jobs/default/queued/0/asc/1",
        "/admin/rq/0/view/jobs/default/queued/8/asc/0",
        "/admin/rq/0/data/jobs/default/failed/0/asc/1.json",
        "/admin/rq/0/data/jobs/default/failed/8/asc/0.json",
        "/admin/rq/0/data/jobs/default/failed/8/asc/-1.json",
        "/admin/rq/0/data/jobs/default/failed/101/asc/1.json",
        "/admin/rq/0/data/jobs/default/failed/8/asc/99999999999999999999.json",
        "/admin/rq/0/view/jobs/default/queued/8/asc/99999999999999999999",
        "/admin/rq/99999999999999999999/view/queues",
    ],
)
def test_what_the_dashboard_would_fail_on_is_a_404(client, as_admin, url):
    assert client.get(url).status_code == 404


def test_requeueing_an_unknown_job_is_a_404(client, as_admin):
    assert client.post("/admin/rq/job/no-such-job/requeue", headers=SAME_ORIGIN).status_code == 404


def test_dashboard_pages_allow_only_their_own_inline_script(client, as_admin):
    response = client.get("/admin/rq/")
    policy = response.headers["Content-Security-Policy"]
    nonce = re.search(r"'nonce-([^']+)'", policy)[1]
    assert f'<script type="text/javascript" nonce="{nonce}">' in response.text
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["script-src"] == f"'self' 'unsafe-eval' 'nonce-{nonce}'"
    assert directives["frame-ancestors"] == "'none'"
    assert client.get("/admin/rq/").headers["Content-Security-Policy"] != policy  # fresh nonce


def test_the_stats_page_gets_a_strict_policy_and_is_not_stored(client, as_admin):
    response = client.get("/admin/stats")
    assert response.headers["Content-Security-Policy"].startswith("default-src 'self';")
    assert "unsafe" not in response.headers["Content-Security-Policy"]
    assert response.headers["Cache-Control"] == "no-store"


def test_only_admins_see_the_admin_link(client, auth, author_id, admin_id):
    auth.login()
    assert "/admin/stats" not in client.get("/").text
    auth.logout()
    auth.login(EMAILS["admin"])
    assert ("Admin", "/admin/stats") in html.links(client.get("/").text)


# What the pages may show


def admin_pages() -> list[str]:
    """Every URL under /admin that an admin can open, files aside."""
    return [
        url_of(rule)
        for rule in ADMIN_RULES
        if expected_status(rule, "admin", "GET") == 200
        and rule.endpoint not in ("rq_dashboard.static", "rq_dashboard.favicon")
    ]


def test_a_script_in_a_failed_job_is_escaped_on_every_admin_page(
    client, as_admin, worker_on_failed_job
):
    pages = admin_pages()
    assert len(pages) > 10
    for url in pages:
        response = client.get(url, follow_redirects=True)
        assert response.status_code == 200, url
        if response.mimetype == "application/json":
            continue  # data for the page's script, which escapes it (see below)
        assert "<script>alert" not in response.text, url
        assert "<%=" not in response.text, url  # no Underscore template prints raw text


def test_every_raw_upstream_template_is_overridden():
    """rq-dashboard prints job data raw with Underscore's <%= %>; each template that does
    must have an escaping copy in templates/, also after an upgrade of the package."""
    upstream = Path(rq_dashboard.__file__).parent / "templates"
    raw = [p.relative_to(upstream) for p in upstream.rglob("*.*") if "<%=" in p.read_text()]
    assert raw
    for path in raw:
        ours = ROOT / "templates" / path
        assert ours.exists(), f"{path} prints raw text: copy it to templates/ and escape it"
        assert "<%=" not in ours.read_text()


RENDER = """
const _ = require(process.argv[1]);
global.url_for_single_job_view = (id) => "/admin/rq/0/view/job/" + encodeURIComponent(id);
global.toRelative = (date) => date;
const input = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(_.template(input.template)({ d: input.data }));
"""


def render_in_node(page: str, name: str, data: dict) -> str:
    """Render one of the page's client-side templates as its script does."""
    template = re.search(rf'<script name="{name}" type="text/template">(.*?)</script>', page, re.S)
    underscore = Path(rq_dashboard.__file__).parent / "static/js/underscore-umd-min.js"
    return subprocess.run(
        ["node", "-e", RENDER, str(underscore)],
        input=json.dumps({"template": template[1], "data": data}),
        capture_output=True,
        text=True,
        check=True,
    ).stdout


@pytest.mark.skipif(
    shutil.which("node") is None and not os.environ.get("CI"),
    reason="needs Node.js to run the templates (CI must have it)",
)
def test_the_dashboard_scripts_render_job_data_as_text(
    client, as_admin, failed_job, worker_on_failed_job
):
    job_page = client.get(f"/admin/rq/0/view/job/{failed_job}").text
    job = client.get(f"/admin/rq/0/data/job/{failed_job}.json").get_json()
    jobs_page = client.get("/admin/rq/0/view/jobs/default/failed/8/asc/1").text
    jobs = client.get("/admin/rq/0/data/jobs/default/failed/8/asc/1.json").get_json()["jobs"]
    workers_page = client.get("/admin/rq/0/view/workers").text
    workers = client.get("/admin/rq/0/data/workers.json").get_json()["workers"]

    for rendered in (
        render_in_node(job_page, "job-info", job),
        render_in_node(jobs_page, "job-row", jobs[0]),
        render_in_node(workers_page, "worker-row", workers[0]),
    ):
        assert "<script>" not in rendered
        assert "&lt;script&gt;alert(&#x27;owned&#x27;)&lt;/script&gt;" in rendered


def test_the_dashboard_shows_our_redis_without_its_password(app):
    assert dashboard.redis_label("rediss://:s3cret@redis.example:6380/0?ssl_cert_reqs=none") == (
        "rediss://:***@redis.example:6380/0"
    )


def test_the_last_page_of_a_registry_and_beyond_it(app, client, as_admin, failed_job):
    data = client.get("/admin/rq/0/data/jobs/default/failed/8/asc/1.json").get_json()
    assert [job["id"] for job in data["jobs"]] == [failed_job]
    beyond = client.get("/admin/rq/0/data/jobs/default/failed/8/asc/2147483647.json")
    assert beyond.status_code == 200 and beyond.get_json()["jobs"] == []


def test_compact_works_on_an_empty_queue(app, client, as_admin):
    response = client.post("/admin/rq/queue/default/compact", headers=SAME_ORIGIN)
    assert response.get_json() == {"status": "OK"}


def test_compact_drops_the_ids_of_deleted_jobs(app, client, as_admin):
    with app.app_context():
        queue = get_queue("default")
        kept, deleted = (queue.enqueue(demo, 0, text) for text in ("kept", "deleted"))
        deleted.delete(remove_from_queue=False)
        assert queue.job_ids == [kept.id, deleted.id]
    client.post("/admin/rq/queue/default/compact", headers=SAME_ORIGIN)
    with app.app_context():
        assert get_queue("default").job_ids == [kept.id]


def test_the_job_page_of_a_job_with_dependencies(app, client, as_admin):
    with app.app_context():
        queue = get_queue("default")
        first = queue.enqueue(demo, 0, "first")
        gone = queue.enqueue(demo, 0, "gone")
        waiting = queue.enqueue(demo, 0, "then", depends_on=[first, gone])
        gone.delete()
    assert client.get(f"/admin/rq/0/view/job/{waiting.id}").status_code == 200
    data = client.get(f"/admin/rq/0/data/job/{waiting.id}.json").get_json()
    statuses = dict(zip(data["depends_on"], data["depends_on_status"], strict=True))
    assert statuses == {first.id: "active", gone.id: "expired"}
    assert data["status"] == "deferred"


def test_the_dashboard_keeps_its_other_hooks_and_uses_the_apps_redis(app):
    from rq_dashboard import web

    hooks = app.before_request_funcs[dashboard.NAME]
    assert hooks[0] is dashboard.before_dashboard_request
    assert web.push_rq_connection not in hooks


def test_requeueing_a_job_that_has_not_failed_is_a_400(app, client, as_admin):
    with app.app_context():
        job = get_queue("default").enqueue(demo, 0, "waiting")
    response = client.post(f"/admin/rq/job/{job.id}/requeue", headers=SAME_ORIGIN)
    assert response.status_code == 400
    assert "Only a failed job can be requeued." in response.text
    assert job_status(app, job.id) == JobStatus.QUEUED


# A job in each of the dashboard's lists, on what RQ records

LISTS = ("queued", "failed", "deferred", "started", "finished", "scheduled", "canceled")


@pytest.fixture(params=["fakeredis", pytest.param("redis", marks=pytest.mark.integration)])
def job_in_each_list(request, app, run_jobs) -> dict[str, str]:
    """One job of queue ``default`` in each list, by the list's name; the started one is
    held by the worker ``busy``. On fakeredis, then on the real Redis."""
    if request.param == "redis":
        request.getfixturevalue("live_redis")
    with app.app_context():
        queue = get_queue("default")
        ids = {
            "finished": queue.enqueue(demo, 0, "finished").id,
            "failed": queue.enqueue(fail_with, "failed").id,
        }
        run_jobs()
        worker = Worker([queue], connection=queue.connection, name="busy")
        worker.register_birth()
        queue.enqueue(demo, 0, "started")
        ids["started"] = take_next_job(worker).id
        ids["queued"] = queue.enqueue(demo, 0, "queued").id
        ids["deferred"] = queue.enqueue(demo, 0, "deferred", depends_on=ids["queued"]).id
        ids["scheduled"] = queue.enqueue_in(timedelta(hours=1), demo, 0, "scheduled").id
        canceled = queue.enqueue(demo, 0, "canceled")
        canceled.cancel()
        ids["canceled"] = canceled.id
    return ids


def listed(client, name: str, order: str = "asc") -> list[str]:
    url = f"/admin/rq/0/data/jobs/default/{name}/8/{order}/1.json"
    return [job["id"] for job in client.get(url).get_json()["jobs"]]


def test_each_list_shows_its_job_and_each_job_its_state(client, as_admin, job_in_each_list):
    queues = client.get("/admin/rq/0/data/queues.json").get_json()["queues"]
    (default,) = (queue for queue in queues if queue["name"] == "default")
    assert default["count"] == 1
    for name, job_id in job_in_each_list.items():
        assert listed(client, name) == listed(client, name, "dsc") == [job_id], name
        if name != "queued":
            assert default[f"{name}_job_registry_count"] == 1, name
        assert client.get(f"/admin/rq/0/view/jobs/default/{name}/8/asc/1").status_code == 200
        assert client.get(f"/admin/rq/0/data/job/{job_id}.json").get_json()["status"] == name
        assert client.get(f"/admin/rq/0/view/job/{job_id}").status_code == 200


def test_the_workers_list_shows_the_job_a_worker_runs(client, as_admin, job_in_each_list):
    assert client.get("/admin/rq/0/view/workers").status_code == 200
    (worker,) = client.get("/admin/rq/0/data/workers.json").get_json()["workers"]
    assert (worker["name"], worker["state"], worker["queues"]) == ("busy", "busy", ["default"])
    assert worker["current_job"]["job_id"] == job_in_each_list["started"]


@pytest.mark.parametrize("name", LISTS)
def test_delete_takes_a_job_off_any_list(app, client, as_admin, job_in_each_list, name):
    job_id = job_in_each_list[name]
    response = client.post(f"/admin/rq/job/{job_id}/delete", headers=SAME_ORIGIN)
    assert response.get_json() == {"status": "OK"}
    assert client.get(f"/admin/rq/0/data/job/{job_id}.json").status_code == 404
    assert listed(client, name) == []
    others = {other: [kept] for other, kept in job_in_each_list.items() if other != name}
    assert {other: listed(client, other) for other in others} == others
    # A running job's record goes with it: its worker no longer shows it.
    (worker,) = client.get("/admin/rq/0/data/workers.json").get_json()["workers"]
    assert (worker["current_job"] == "idle") == (name == "started")


@pytest.mark.parametrize("name", LISTS)
def test_empty_deletes_the_jobs_of_one_list(app, client, as_admin, job_in_each_list, name):
    response = client.post(f"/admin/rq/queue/default/{name}/empty", headers=SAME_ORIGIN)
    assert response.get_json() == {"status": "OK"}
    assert listed(client, name) == []
    with app.app_context():
        assert not Job.exists(job_in_each_list[name], connection=app.extensions["redis"])
    others = {other: [kept] for other, kept in job_in_each_list.items() if other != name}
    assert {other: listed(client, other) for other in others} == others


def test_requeue_all_puts_every_failed_job_back_on_its_queue(app, client, as_admin, run_jobs):
    with app.app_context():
        queue = get_queue("default")
        failed = [queue.enqueue(fail_with, f"failure {n}").id for n in range(3)]
    run_jobs()
    response = client.post("/admin/rq/requeue/default", headers=SAME_ORIGIN)
    assert response.get_json() == {"status": "OK", "count": 3}
    assert listed(client, "failed") == []
    assert sorted(listed(client, "queued")) == sorted(failed)
    assert {job_status(app, job_id) for job_id in failed} == {JobStatus.QUEUED}


def test_the_workers_list_while_a_worker_runs_a_job_whose_records_were_cleared(
    app, client, as_admin
):
    """``flask jobs clear`` while a job runs; then the worker's heartbeat writes one field of
    the job's execution back, which RQ 3.0 cannot read (see queue_admin.running_job)."""
    with app.app_context():
        queue = get_queue("default")
        worker = Worker([queue], connection=queue.connection, name="busy")
        worker.register_birth()
        queue.enqueue(demo, 0, "running")
        take_next_job(worker)
        clear_all()
        with queue.connection.pipeline() as pipe:
            worker.execution.heartbeat(queue.started_job_registry, ttl=60, pipeline=pipe)
            pipe.execute()
    response = client.get("/admin/rq/0/data/workers.json")
    assert response.status_code == 200
    (shown,) = response.get_json()["workers"]
    assert (shown["name"], shown["state"], shown["current_job"]) == ("busy", "busy", "idle")
