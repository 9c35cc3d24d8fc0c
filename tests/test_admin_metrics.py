"""The metrics pages at /admin/metrics: what each job function costs, by period."""

from datetime import UTC, datetime, timedelta

import pytest

from blog import job_metrics
from blog.admin.metrics import bucket_label
from blog.queues import enqueue
from blog.templating import format_duration
from tests import jobs
from tests.support import html
from workers.demo import demo

DEMO_PAGE = "/admin/metrics/default/workers.demo.demo"
PAYLOAD = "<img src=x onerror=alert(1)>"


@pytest.fixture
def as_admin(auth, admin_id):
    auth.login("root@example.com")


@pytest.fixture
def jobs_run(app, run_jobs):
    """Two demo jobs, one of them failing, and a no-op on the low queue, run by the worker."""
    with app.app_context():
        enqueue(demo, 0, "fine")
        enqueue(demo, 0, "broken", 1.0)
        enqueue(jobs.noop, queue="low")
    run_jobs()


def record(app, function: str, minutes_ago: int, duration: float, failed: bool = False):
    at = datetime.now(UTC) - timedelta(minutes=minutes_ago)
    with app.extensions["redis"].pipeline() as pipe:
        job_metrics.add_execution(pipe, function, "default", failed, duration, 0.01, at)
        pipe.execute()


def test_durations_read_in_their_unit():
    assert [format_duration(s) for s in (None, 0.0004, 0.0123, 0.185, 0.9999, 4.5, 300)] == [
        "–",
        "400 µs",
        "12.3 ms",
        "185 ms",
        "1 s",
        "4.5 s",
        "5 min",
    ]
    assert bucket_label(0) == "≤ 1 ms"
    assert bucket_label(len(job_metrics.BOUNDS)) == "> 41.7 min"


@pytest.mark.parametrize("path", ["/admin/metrics/", DEMO_PAGE])
def test_only_admins_see_the_metrics(client, auth, author_id, admin_id, jobs_run, path):
    assert client.get(path).headers["Location"].startswith("/login?next=")
    auth.login()
    assert client.get(path).status_code == 403
    auth.logout()
    auth.login("root@example.com")
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert "unsafe" not in response.headers["Content-Security-Policy"]


def test_each_function_has_a_row_with_its_figures(client, as_admin, jobs_run):
    page = client.get("/admin/metrics/").text
    assert html.row(page, "workers.demo.demo on default")[1:3] == ["2", "1 (50.0%)"]
    assert html.row(page, "tests.jobs.noop on low")[1:3] == ["1", "0"]
    assert ("workers.demo.demo", "/admin/metrics/default/workers.demo.demo?window=1h") in (
        html.links(page)
    )
    assert ("job stats", "/admin/stats") in html.links(page)
    assert ("job metrics", "/admin/metrics/") in html.links(client.get("/admin/stats").text)


def test_the_period_decides_which_executions_count(app, client, as_admin):
    record(app, "app.report", minutes_ago=0, duration=0.02)
    record(app, "app.report", minutes_ago=3 * 60, duration=2.0, failed=True)
    record(app, "app.old", minutes_ago=30 * 60, duration=2.0)

    hour = client.get("/admin/metrics/?window=1h").text
    assert html.row(hour, "app.report on default")[1:3] == ["1", "0"]
    assert "app.old" not in html.text(hour)
    eight = client.get("/admin/metrics/?window=8h").text
    assert html.row(eight, "app.report on default")[1:3] == ["2", "1 (50.0%)"]
    assert html.row(client.get("/admin/metrics/?window=72h").text, "app.old on default")[1] == "1"
    bogus = client.get("/admin/metrics/?window=bogus").text  # the hour, then
    assert html.row(bogus, "app.report on default")[1] == "1"


def test_a_functions_page_has_every_period_a_histogram_and_a_series(app, client, as_admin):
    for duration in (0.002, 0.002, 0.002, 0.3):
        record(app, "app.report", minutes_ago=0, duration=duration)
    record(app, "app.report", minutes_ago=10 * 60, duration=3.0, failed=True)

    page = client.get("/admin/metrics/default/app.report").text
    assert html.row(page, "1h")[1:3] == ["4", "0"]
    assert html.row(page, "24h")[1:3] == ["5", "1 (20.0%)"]
    assert html.row(page, "1h")[4] == "2 ms"  # p50: 2 of the 3 in (1 ms, 2.5 ms]
    assert "≤ 2.5 ms: 3<" in page  # the histogram's bar, labelled
    assert "≤ 500 ms: 1<" in page
    assert "A bar is 1 minute" in html.text(page)
    assert "A bar is 24 minutes" in html.text(
        client.get("/admin/metrics/default/app.report?window=24h").text
    )


def test_an_unknown_function_is_a_404(app, client, as_admin):
    record(app, "app.report", minutes_ago=0, duration=0.1)
    assert client.get("/admin/metrics/low/app.report").status_code == 404
    assert client.get("/admin/metrics/default/app.nothing").status_code == 404


def test_names_are_escaped(app, client, as_admin):
    record(app, PAYLOAD, minutes_ago=0, duration=0.1)
    assert "<img" not in client.get("/admin/metrics/").text
    function = client.get("/admin/metrics/default/" + PAYLOAD)
    assert function.status_code == 200
    assert "<img" not in function.text


def test_deploys_are_marked_on_the_chart_of_their_period(app, client, as_admin):
    record(app, "app.report", minutes_ago=0, duration=0.1)
    connection = app.extensions["redis"]
    connection.delete(job_metrics.RELEASES_KEY)  # the checkout's commit, which recorded it
    now = datetime.now(UTC)
    connection.zadd(job_metrics.RELEASES_KEY, {"v41": (now - timedelta(hours=5)).timestamp()})
    connection.zadd(job_metrics.RELEASES_KEY, {"v42": (now - timedelta(minutes=10)).timestamp()})

    hour = client.get("/admin/metrics/default/app.report").text
    assert hour.count('class="deploy"') == 2  # v42 on both strips
    assert "v42 deployed" in hour and "v41" not in hour
    eight = client.get("/admin/metrics/default/app.report?window=8h").text
    assert eight.count('class="deploy"') == 4
    assert "Deploys: v41 on" in html.text(eight)
