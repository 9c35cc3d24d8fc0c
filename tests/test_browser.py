"""In a real browser, at a desktop width and a phone width: a newcomer's walk through the blog
and an admin's walks through the stats page, the RQ dashboard, the metrics and the jobs
pages.

Runs the app the way ``honcho start`` does (gunicorn and a forking ``rq worker``, as
subprocesses, started once for the module) and drives Debian's Chromium through Playwright.
Every page must fit its width (no sideways scrolling), log no console error (a failed load, a
script error, a Content-Security-Policy violation), and leaves a full-page screenshot in
tests/artifacts/screenshots/ to look at.
"""

import os
import re
import shutil
import subprocess
import sys
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import pytest
import sqlalchemy as sa
from rq import Retry

from blog import create_app, queues
from blog.extensions import db
from blog.queues import enqueue
from devtools.embedded_redis import free_port
from tests import factories
from tests.dynos import BIN, ROOT, wait_for
from tests.support.config import TEST_CONFIG
from workers.demo import demo

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = ROOT / "tests" / "artifacts" / "screenshots"
WIDTHS = {"desktop": 1280, "phone": 390}
ADMIN = "root@example.com"

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser tests: install Debian's chromium")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def database(postgres_schema, tmp_path_factory):
    """The module's database: (config for the app, URL for the processes)."""
    if postgres_schema is None:
        url = f"sqlite:///{tmp_path_factory.mktemp('browser') / 'blog.sqlite3'}"
        return {"SQLALCHEMY_DATABASE_URI": url}, url
    url, schema = postgres_schema
    options = {"connect_args": {"options": f"-csearch_path={schema}"}}
    config = {"SQLALCHEMY_DATABASE_URI": url, "SQLALCHEMY_ENGINE_OPTIONS": options}
    return config, f"{url}?options=-csearch_path%3D{schema}"


@dataclass
class Site:
    url: str
    app: object


@pytest.fixture(scope="module")
def site(database, test_redis_url):
    """The web and worker processes on the module's database and the test Redis, with an
    admin account; yields the site. Shared by every test here, so each uses its own users."""
    config, url = database
    app = create_app({**TEST_CONFIG, **config, "REDIS_URL": test_redis_url})
    redis = queues.connect(test_redis_url)
    redis.flushdb()
    with app.app_context():
        db.create_all()
        factories.user(ADMIN, admin=True)
    port = free_port()
    env = {
        **os.environ,
        "APP_ENV": "testing",
        "DATABASE_URL": url,
        "REDIS_URL": test_redis_url,
        "PORT": str(port),
        "WEB_CONCURRENCY": "2",
        "WORKER_CONCURRENCY": "1",
        "TAGGER_LATENCY": "3",  # long enough to see the page before its tags
        "TAGGER_FAILURE_RATE": "0",
        "RETRY_BACKOFF_FACTOR": "0",
        "MAIL_URL": "",
        "PYTHONUNBUFFERED": "1",
    }
    processes = [
        subprocess.Popen(
            [BIN / "gunicorn", "--config", "gunicorn.conf.py", "app:app"], cwd=ROOT, env=env
        ),
        subprocess.Popen(
            [sys.executable, "-m", "workers"],
            cwd=ROOT,
            env=env,
        ),
    ]
    site_url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(site_url, timeout=5).status == 200, 30, "the web")
        yield Site(site_url, app)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        redis.flushdb()
        redis.close()
        with app.app_context():
            if db.engine.dialect.name == "postgresql":
                tables = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
                with db.engine.begin() as conn:
                    conn.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            db.engine.dispose()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Walk:
    """One browser tab at one width, checking each page it reaches."""

    def __init__(self, page, site: Site, name: str):
        self.page = page
        self.site = site
        self.name = name
        self.errors: list[str] = []
        self.expected: list[str] = []
        self.shots = 0
        page.on("console", self.on_console)
        page.on("pageerror", lambda error: self.errors.append(f"script error: {error}"))

    def on_console(self, message):
        if message.type != "error":
            return
        if any(fragment in message.text for fragment in self.expected):
            return
        self.errors.append(f"{self.page.url}: {message.text}")

    @contextmanager
    def allowing_console_error(self, fragment: str):
        """A step whose failure the page itself reports; the browser logs it too."""
        self.expected.append(fragment)
        yield
        self.expected.remove(fragment)

    def go(self, path: str):
        self.page.goto(self.site.url + path)

    def check(self, what: str):
        """The page fits its width; a screenshot to look at."""
        page = self.page
        width, scroll_width = page.evaluate(
            "[window.innerWidth, document.documentElement.scrollWidth]"
        )
        assert width == page.viewport_size["width"], f"{what}: the page was zoomed out"
        assert scroll_width <= width, f"{what} is {scroll_width}px wide in {width}px"
        self.shots += 1
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(
            path=SCREENSHOTS / f"{self.name}-{self.shots:02d}-{what}.png", full_page=True
        )

    def flash(self) -> str:
        return self.page.inner_text("main .flash")


@pytest.fixture(params=list(WIDTHS))
def walk(request, site, browser):
    width = WIDTHS[request.param]
    phone = width < 600
    context = browser.new_context(
        viewport={"width": width, "height": 844 if phone else 900},
        is_mobile=phone,  # so that the page's viewport meta tag counts, as on a phone
        has_touch=phone,
    )
    name = f"{request.node.originalname.removeprefix('test_')}-{request.param}"
    walk = Walk(context.new_page(), site, name)
    walk.width = width
    yield walk
    context.close()
    assert walk.errors == []


def log_in(walk: Walk, email: str, password: str):
    walk.go("/login")
    walk.page.fill("#email", email)
    walk.page.fill("#password", password)
    walk.page.click("main button[type=submit]")
    walk.page.wait_for_url(f"{walk.site.url}/")


def open_menu_on_a_phone(walk: Walk):
    """The dashboard's navigation folds into a menu button on a narrow screen."""
    toggler = walk.page.locator(".navbar-toggler")
    if walk.width >= 992:  # Bootstrap's navbar-expand-lg: the links show, no button
        assert not toggler.is_visible()
        return
    toggler.click()
    walk.page.wait_for_selector("#navbarSupportedContent.show")


def test_newcomer(walk):
    page, site = walk.page, walk.site
    email = f"newcomer-{walk.width}@example.com"
    password = "correct horse battery"

    walk.go("/")
    walk.check("home")
    walk.go("/signup")
    assert page.get_attribute("#password", "autocomplete") == "new-password"
    page.fill("#email", email)
    page.fill("#password", password)
    page.fill("#confirm", password)
    walk.check("signup")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{site.url}/login")
    walk.check("signed-up")

    page.click("main .flash a")  # the message links to the mailbox
    page.wait_for_url(f"{site.url}/dev/mail/")
    walk.check("mailbox")
    page.click(f"tr:has-text('{email}') a")
    assert page.inner_text("h1") == "Welcome to Flask Background Jobs"
    walk.check("welcome-email")

    log_in(walk, email, password)
    page.click("text=Write a post")
    page.fill("#title", "Background jobs with Redis, and İstanbul")
    page.fill("#body", "Redis holds the queue; background jobs keep the request quick. Redis!")
    page.fill("#tags", "Mine, İstanbul")
    walk.check("write")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/posts/\d+$"))
    # The request did not wait for the tagger: the page shows it still at work.
    assert "the tagger works in the background" in walk.flash()
    assert "The tagger is reading this post" in page.inner_text("#tagging-state")
    walk.check("published")

    page.evaluate("window.notReloaded = true")
    page.wait_for_selector("#tags a.tag-tagger", timeout=20_000)
    assert page.evaluate("window.notReloaded") is True
    assert "redis" in page.locator("#tags a.tag-tagger").all_inner_texts()
    assert page.locator("#tags a.tag-author").all_inner_texts() == ["istanbul", "mine"]
    tagged = page.inner_text("#tagging-state")
    assert tagged.startswith("✦ marks the tags the tagger added (")
    walk.check("tagged")
    page.reload()
    assert page.inner_text("#tagging-state") == tagged  # the same words and date as the server's

    page.click("#tags a.tag-tagger:text-is('redis')")
    page.wait_for_url(f"{site.url}/tags/redis")
    assert "Background jobs with Redis" in page.inner_text("main")
    walk.check("tag-page")

    page.click("main h2 a")
    page.click("text=Edit")
    page.fill("#title", "Background jobs, edited")
    walk.check("edit")
    page.click("main button[type=submit]")
    page.wait_for_url(re.compile(r".*/posts/\d+$"))
    assert page.inner_text("main h1") == "Background jobs, edited"

    page.click("text=Delete…")
    page.wait_for_url(re.compile(r".*/posts/\d+/delete$"))
    assert page.inner_text("main h1") == "Delete “Background jobs, edited”?"
    walk.check("delete-question")
    page.click("text=Delete the post")
    page.wait_for_url(f"{site.url}/")
    assert walk.flash() == "The post is deleted."
    walk.check("deleted")

    page.click("header >> text=Log out")
    page.wait_for_selector("header >> text=Log in")
    walk.check("logged-out")


def test_admin(walk):
    page, site = walk.page, walk.site
    with site.app.app_context():
        failing = enqueue(demo, 2, "broken", 1.0).id  # fails, after 2 s at work each time
    log_in(walk, ADMIN, factories.PASSWORD)

    page.click("header >> text=Admin")
    page.wait_for_url(f"{site.url}/admin/stats")
    workers = " ".join(page.inner_text(".figure:nth-child(3)").split())
    assert re.fullmatch(r"1 worker, (idle|busy)", workers)
    page.wait_for_selector("svg.strip-failed rect.failed")  # once the worker has failed it
    # The page refreshes itself, footer included: mark what is shown, wait for fresh copies.
    page.evaluate("document.querySelectorAll('[data-live]').forEach(e => e.dataset.seen = 1)")
    page.wait_for_selector("#page-timing:not([data-seen])", state="attached")
    page.wait_for_selector("#live:not([data-seen])", state="attached")
    assert page.locator("svg.strip-failed rect.failed").count() >= 1
    walk.check("stats")

    page.click("text=RQ dashboard")
    page.wait_for_selector("tr[data-role=queue]")
    names = page.locator("tr[data-role=queue] td:first-child").all_inner_texts()
    assert names == ["urgent", "mailers", "default", "low"]
    walk.check("queues")

    open_menu_on_a_phone(walk)
    page.click("#navbarSupportedContent >> text=Workers")
    page.wait_for_selector("tr[data-role=worker]")
    walk.check("workers")

    walk.go("/admin/rq/0/view/jobs/default/failed/8/asc/1")
    assert "failed for good" in page.inner_text("p.intro")
    row = page.locator(f"tr[data-job-id='{failing}']")
    row.locator("[data-role=requeue-job-btn]").click()
    page.wait_for_selector(f"#dashboard-notice:has-text('Requeued job {failing} on its queue.')")
    walk.check("requeued-from-list")

    # The worker runs it again, and it fails again: requeue it from its own page.
    walk.go(f"/admin/rq/0/view/job/{failing}")
    page.wait_for_selector("#requeue-job-btn:visible")
    walk.check("failed-job")
    page.click("#requeue-job-btn")
    page.wait_for_selector("#dashboard-notice:has-text('Requeued')")
    page.wait_for_selector("#requeue-job-btn", state="hidden")

    walk.go("/admin/rq/0/view/jobs/default/failed/8/asc/1")
    page.click("#requeue-all-btn")
    page.click("#confirmation-modal-yes")
    notice = page.wait_for_selector("#dashboard-notice:visible")
    assert re.fullmatch(r"Requeued \d+ jobs?\.", notice.inner_text())
    page.wait_for_selector("#confirmation-modal", state="hidden")
    page.click("#empty-btn")
    page.click("#confirmation-modal-yes")
    page.wait_for_selector("#dashboard-notice:has-text('Done: the list is empty.')")
    page.wait_for_selector("#confirmation-modal", state="hidden")

    # Whatever Compact makes of an empty queue, the page says so.
    walk.go("/admin/rq/0/view/jobs/urgent/queued/8/asc/1")
    with walk.allowing_console_error("status of 500"):
        page.click("#compact-btn")
        page.click("#confirmation-modal-yes")
        notice = page.wait_for_selector("#dashboard-notice:visible")
        page.wait_for_selector("#confirmation-modal", state="hidden")
        assert re.fullmatch(
            r"The queue is compacted\.|Could not compact the queue: .+", notice.inner_text()
        )
    walk.check("compacted")

    open_menu_on_a_phone(walk)
    page.click("#navbarSupportedContent >> text=Job stats")
    page.wait_for_url(f"{site.url}/admin/stats")
    walk.go("/admin/rq/")
    open_menu_on_a_phone(walk)
    page.click("#navbarSupportedContent >> text=Back to the blog")
    page.wait_for_url(f"{site.url}/")


def test_job_metrics(walk):
    page, site = walk.page, walk.site
    with site.app.app_context():
        enqueue(demo, 0.3, "fine")
        enqueue(demo, 0, "broken", 1.0)
    log_in(walk, ADMIN, factories.PASSWORD)

    walk.go("/admin/stats")
    page.click("main >> text=job metrics")
    page.wait_for_url(f"{site.url}/admin/metrics/")

    def listed() -> bool:
        page.reload()
        return page.locator("text=workers.demo.demo").count() > 0

    wait_for(listed, 30, "the worker to run the demo jobs")
    walk.check("metrics")

    page.click("text=workers.demo.demo")
    page.wait_for_selector("svg rect.processed")
    assert page.locator("table.metrics tbody tr").count() == 4  # 1h, 8h, 24h, 72h
    walk.check("metrics-function")
    page.click("nav.windows >> text=72h")
    page.wait_for_selector("text=A bar is 72 minutes")
    walk.check("metrics-72h")


def test_jobs_admin(walk):
    page, site = walk.page, walk.site
    tag = f"walk:{walk.width}"  # each width finds its own jobs
    with site.app.app_context():
        scheduled = enqueue(demo, 0, "later", delay=timedelta(hours=1), tags=(tag,)).id
        # Fails at once, then waits an hour for its retry.
        retrying = enqueue(demo, 0, "broken", 1.0, retry=Retry(max=2, interval=3600), tags=(tag,))
    log_in(walk, ADMIN, factories.PASSWORD)

    walk.go("/admin/stats")
    page.click("main >> text=jobs pages")
    page.wait_for_url(f"{site.url}/admin/jobs")
    walk.check("jobs")
    page.fill("#q", tag)
    page.click("form.job-search button[type=submit]")
    page.wait_for_selector(f"table.jobs a.job-id:text-is('{scheduled}')")
    walk.check("jobs-found")

    page.click(f"tr:has(a.job-id:text-is('{scheduled}')) >> text=Edit")
    page.wait_for_url(f"{site.url}/admin/jobs/{scheduled}/edit")
    walk.check("job-edit")
    page.select_option("#queue", "low")
    page.fill("#args", '[0, "edited", 0]')
    page.click("main form button[type=submit]")
    page.wait_for_selector("main .flash-success")
    assert walk.flash() == f"Job {scheduled} changed: on low, new arguments."
    assert "'edited'" in page.inner_text("table.details")
    walk.check("job-edited")

    def listed() -> bool:
        page.goto(f"{site.url}/admin/jobs/retrying?tag={tag}")
        return page.locator(f"a.job-id:text-is('{retrying.id}')").count() == 1

    wait_for(listed, 30, "the worker to fail the job once")
    assert "DemoFailure: demo job failed on purpose" in page.inner_text("table.jobs")
    walk.check("jobs-retrying")
    page.click(f"button[name=run_one][value='{retrying.id}']")
    page.wait_for_selector("main .flash-success")
    assert walk.flash().startswith("1 job due now")

    walk.go(f"/admin/jobs/scheduled?tag={tag}")
    page.check(f"input[name=job][value='{scheduled}']")
    walk.check("jobs-scheduled")
    page.click("text=Delete the ticked jobs…")
    page.wait_for_selector("main h1:text-is('Delete 1 scheduled job?')")
    walk.check("jobs-confirm")
    page.click("main button.danger")
    page.wait_for_selector("main .flash-success")
    assert walk.flash() == f"1 job deleted ({scheduled})."
    assert "No job is scheduled." in page.inner_text("main")
    walk.check("jobs-deleted")


def test_admin_operations(walk):
    page, site = walk.page, walk.site
    with site.app.app_context():
        failing = enqueue(demo, 0, "broken", 1.0).id
    log_in(walk, ADMIN, factories.PASSWORD)

    walk.go("/admin/stats")
    page.click("main >> text=workers and queues")
    page.wait_for_url(f"{site.url}/admin/workers")
    walk.check("workers-and-queues")
    page.click("tr[data-queue=low] >> text=Pause")
    assert walk.flash().startswith("low is paused")
    walk.check("queue-paused")
    page.click("tr[data-queue=low] >> text=Resume")
    assert walk.flash() == "low is resumed: the workers take its jobs again."
    # Quiet asks first; the site's one worker must keep working for the other walks.
    page.click("tr[data-process] >> text=Quiet…")
    page.wait_for_url(re.compile(r".*/admin/workers/quiet\?process=.+"))
    assert page.inner_text("main h1").startswith("Quiet ")
    walk.check("quiet-question")
    page.click("text=Keep it working")
    page.wait_for_url(f"{site.url}/admin/workers")

    def listed() -> bool:
        walk.go("/admin/dead")
        return page.locator(f"tr[data-job-id='{failing}']").count() > 0

    wait_for(listed, 30, "the worker to fail the demo job")
    walk.check("failed-jobs")
    page.check(f"tr[data-job-id='{failing}'] input[type=checkbox]")
    page.click("text=Requeue the ticked jobs…")
    assert page.inner_text("main h1") == "Requeue 1 failed job(s)?"
    walk.check("requeue-question")
    page.click("text=Requeue them")
    assert walk.flash() == "Requeued 1 failed job(s) on their queues."
    wait_for(listed, 30, "the worker to fail it again")
    page.click("text=Delete all")
    assert re.fullmatch(r"Delete all \d+ failed job\(s\)\?", page.inner_text("main h1"))
    walk.check("delete-all-question")
    page.click("text=Delete them all")
    assert walk.flash().startswith("Deleted ")
    assert "No job has failed for good." in page.inner_text("main")

    walk.go("/admin/recurring")
    walk.check("recurring")
    page.click("section[data-name='workers.maintenance.refresh_stats'] >> text=Run now")
    assert walk.flash().startswith("Enqueued workers.maintenance.refresh_stats (job ")
    walk.check("recurring-run")
