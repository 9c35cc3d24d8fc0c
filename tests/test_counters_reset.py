"""Resetting the processed and failed counters: ``flask jobs reset-stats`` and the stats
page's button, as Sidekiq's dashboard has."""

import re
from datetime import UTC, datetime

from blog import job_stats
from blog.queues import enqueue
from workers.demo import demo

SAME_ORIGIN = {"Origin": "http://localhost"}


def count_some_jobs(app) -> None:
    connection = app.extensions["redis"]
    for failed in (False, False, True):
        job_stats.record_job(connection, failed=failed)


def test_reset_zeroes_the_totals_and_the_chart_and_leaves_other_keys(app):
    count_some_jobs(app)
    connection = app.extensions["redis"]
    with app.app_context():
        enqueue(demo, 0, "still waiting")
    job_stats.store_blog_stats(connection, {"posts": 1})

    assert job_stats.reset(connection) == {"processed": 3, "failed": 1}

    assert job_stats.totals(connection) == {"processed": 0, "failed": 0}
    assert all(m.processed == m.failed == 0 for m in job_stats.last_hour(connection))
    assert job_stats.cached_blog_stats(connection) == {"posts": 1}
    assert connection.llen("rq:queue:default") == 1
    job_stats.record_job(connection, failed=False, at=datetime.now(UTC))  # counting goes on
    assert job_stats.totals(connection)["processed"] == 1


def test_the_command_asks_first(runner, app):
    count_some_jobs(app)
    result = runner.invoke(args=["jobs", "reset-stats"], input="n\n")
    assert result.exit_code == 1
    assert job_stats.totals(app.extensions["redis"])["processed"] == 3
    result = runner.invoke(args=["jobs", "reset-stats", "--yes"])
    assert result.output == "Counters reset (they were 3 processed, 1 failed).\n"
    assert job_stats.totals(app.extensions["redis"]) == {"processed": 0, "failed": 0}


def test_an_admin_resets_from_the_stats_page_with_the_form_token(app, client, admin_id):
    app.config["WTF_CSRF_ENABLED"] = True
    count_some_jobs(app)
    with client.session_transaction() as session:
        session["_user_id"] = str(admin_id)
    page = client.get("/admin/stats").text
    token = re.search(r'action="/admin/stats/reset">\s*<input[^>]*value="([^"]+)"', page)[1]

    refused = client.post("/admin/stats/reset", headers=SAME_ORIGIN)  # no token
    assert refused.status_code == 400
    assert job_stats.totals(app.extensions["redis"])["processed"] == 3

    response = client.post(
        "/admin/stats/reset", data={"csrf_token": token}, headers=SAME_ORIGIN, follow_redirects=True
    )
    assert "Counters reset (they were 3 processed, 1 failed)." in response.text
    assert re.findall(r'<span class="number">(\d+)</span> processed', response.text) == ["0"]


def test_only_an_admin_may_reset(app, client, auth, author_id):
    count_some_jobs(app)
    assert client.post("/admin/stats/reset", headers=SAME_ORIGIN).status_code == 302  # log in
    auth.login("ada@example.com")
    assert client.post("/admin/stats/reset", headers=SAME_ORIGIN).status_code == 403
    assert job_stats.totals(app.extensions["redis"])["processed"] == 3
