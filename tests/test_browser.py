"""In a real browser: a post is saved at once and its tags appear without a reload.

Runs the app the way ``honcho start`` does (gunicorn and a forking ``rq worker``, as
subprocesses) and drives Debian's Chromium through Playwright.
"""

import os
import shutil
import subprocess
import sys
import urllib.request

import pytest

from blog.embedded_redis import free_port
from tests.dynos import BIN, ROOT, wait_for

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

if not os.path.exists(CHROMIUM):
    if os.environ.get("CI"):
        raise RuntimeError("CI must run the browser tests: install Debian's chromium")
    pytest.skip("Chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture
def site(app, live_redis, process_env):
    """The web and worker processes on this test's database; yields the site's URL."""
    port = free_port()
    env = {**process_env, "PORT": str(port), "TAGGER_LATENCY": "4", "WEB_CONCURRENCY": "2"}
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
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(url, timeout=5).status == 200, 30, "the web")
        yield url
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


@pytest.fixture
def page():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser.new_page()
        browser.close()


def test_tags_appear_without_a_reload(site, page):
    page.goto(f"{site}/signup")
    page.fill("#email", "reader@example.com")
    page.fill("#password", "correct horse battery")
    page.fill("#confirm", "correct horse battery")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{site}/login")
    page.fill("#email", "reader@example.com")
    page.fill("#password", "correct horse battery")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{site}/")

    page.goto(f"{site}/posts/new")
    page.fill("#title", "Background jobs with Redis")
    page.fill("#body", "Redis holds the queue; background jobs keep the request quick. Redis!")
    page.fill("#tags", "mine")
    page.click("main button[type=submit]")
    page.wait_for_url(f"{site}/posts/*")

    # The tagger takes 4 s: had the request waited for it, the tags would be there already.
    assert "The tagger is reading this post" in page.inner_text("#tagging-state")
    page.evaluate("window.notReloaded = true")
    page.wait_for_selector("#tags a.tag-tagger", timeout=20_000)
    assert page.evaluate("window.notReloaded") is True
    tagger_tags = page.locator("#tags a.tag-tagger").all_inner_texts()
    assert "redis" in tagger_tags
    assert page.locator("#tags a.tag-author").all_inner_texts() == ["mine"]
    assert "marks the tags the tagger added" in page.inner_text("#tagging-state")
