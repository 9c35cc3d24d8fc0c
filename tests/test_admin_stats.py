"""The stats page at /admin/stats: the totals, the queues, the workers, the chart, the blog."""

import re
from datetime import UTC, datetime

import pytest

from blog import job_stats
from blog.admin import chart
from blog.admin.views import worker_summary
from blog.queue_admin import WorkerStats
from blog.queues import enqueue
from tests import factories
from tests.support import html
from workers.demo import demo
from workers.maintenance import refresh_stats


@pytest.fixture
def as_admin(auth, admin_id):
    auth.login("root@example.com")


def test_round_up_to_a_readable_top_of_the_chart():
    assert [chart.round_up(n) for n in (0, 1, 3, 7, 10, 11, 240, 5001)] == [
        1,
        1,
        5,
        10,
        10,
        20,
        500,
        10000,
    ]


def test_failures_have_a_scale_of_their_own():
    start = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    minutes = [job_stats.Minute(start, 0, 0)] * 58 + [
        job_stats.Minute(start, 80, 0),
        job_stats.Minute(start, 100, 1),
    ]
    drawn = chart.per_minute(minutes)
    assert (drawn.processed.top, drawn.failed.top) == (100, 1)
    assert [b.height for b in drawn.processed.bars[-2:]] == [96.0, 120.0]
    assert [b.height for b in drawn.failed.bars[-2:]] == [0, 40.0]  # one failure: full height
    assert drawn.processed.bars[-1].label == "18:00 UTC: 100 processed, 1 failed"
    assert drawn.processed.bars[0].height == 0


def test_a_minute_with_any_job_is_never_too_thin_to_see():
    start = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)
    minutes = [job_stats.Minute(start, 1, 0)] + [job_stats.Minute(start, 5000, 0)] * 59
    assert chart.per_minute(minutes).processed.bars[0].height == chart.MIN_HEIGHT


@pytest.mark.parametrize(
    ("states", "words"),
    [
        ([], "workers running"),
        (["idle"], "worker, idle"),
        (["busy"], "worker, busy"),
        (["busy", "idle"], "workers: 1 busy"),
        (["idle", "idle"], "workers: 0 busy"),
    ],
)
def test_the_workers_in_words(states, words):
    workers = [
        WorkerStats(f"w{i}", state, ["default"], None, None) for i, state in enumerate(states)
    ]
    assert worker_summary(workers) == words


def test_the_stats_page_shows_totals_queues_workers_and_the_chart(app, client, as_admin, run_jobs):
    with app.app_context():
        enqueue(demo, 0, "fine")
        enqueue(demo, 0, "broken", 1.0)
    run_jobs()
    with app.app_context():
        enqueue(demo, 0, "waiting", queue="low")
    page = client.get("/admin/stats").text
    figures = re.findall(r'<span class="number">(\d+)</span> (\w+)', page)
    assert figures[:2] == [("2", "processed"), ("1", "failed")]
    assert '<span class="number">0</span> workers running' in page
    assert page.count('<rect class="processed"') == 1  # only the minutes with jobs
    assert page.count('<rect class="failed"') == 1
    assert "2 processed, 1 failed</title>" in page
    low_row = re.search(r">low</a></td>(.*?)</tr>", page, re.S)[1]
    waiting, latency, scheduled, retrying = re.findall(r"<td>([^<]*)</td>", low_row)
    assert (waiting, scheduled, retrying) == ("1", "0", "0")
    assert latency.endswith(" s")
    assert 'data-refresh-seconds="5"' in page
    assert "admin-stats.js" in page


def test_admin_leads_to_the_stats_page(client, as_admin):
    assert client.get("/admin", follow_redirects=True).request.path == "/admin/stats"


def test_the_blog_figures_appear_once_refresh_stats_has_run(app, client, as_admin, author_id):
    assert "Not computed yet" in client.get("/admin/stats").text
    with app.app_context():
        factories.post(author_id, body="one two three", tags=["redis"])
        refresh_stats()
    page = client.get("/admin/stats").text
    rows = html.rows(page)
    figures = rows[rows.index(["posts", "words", "users", "tags"]) + 1]
    assert figures == ["1", "3", "2", "1"]
    assert ("redis", "/tags/redis") in html.links(page)
    assert "Top tags: redis 1" in html.text(page)
    assert "Computed by the refresh_stats job at" in page


def test_the_refresh_script_the_page_asks_for_is_served(client, as_admin):
    (src,) = re.findall(r'<script src="([^"]+)"', client.get("/admin/stats").text)
    response = client.get(src)
    assert response.status_code == 200
    assert "[data-live][id]" in response.text
    response.close()


def test_a_bad_figure_cannot_break_out_of_the_page(app, client, as_admin):
    with app.app_context():
        app.extensions["redis"].set(
            "blog:stats",
            '{"users": 1, "posts": 1, "words": 1, "tags": 1, "tagging": {},'
            ' "top_tags": [{"name": "<b>x</b>", "posts": 1}],'
            ' "computed_at": "2026-11-23T18:00:00+00:00"}',
        )
    page = client.get("/admin/stats").text
    assert "<b>x</b>" not in page
    assert "&lt;b&gt;x&lt;/b&gt;" in page
