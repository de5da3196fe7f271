"""Fixtures of the browser tests: a real server, Debian's chromium driven by Playwright, screenshots.

* ``server``: the web application served by uvicorn in a background thread on a free port of
  127.0.0.1 (:func:`tests.e2e.browser.live.serve`), on a temporary SQLite file with the example
  patients and the accounts of ``tests/unit/web/conftest.py`` (coord, doc, pat-all, pat-mel).
  Browsers treat http://127.0.0.1 as a secure context, so the app's ``Secure`` cookies work.
* ``browser``: chromium launched from the system executable (``/usr/bin/chromium``, installed by
  ``make system-deps``) by Playwright, headless, on a fresh profile. Missing chromium skips the
  tests, or fails them when ``CI=true``.
* ``page``: a new browser context (no cookies) and page for one test.
* ``shot(page, name)``: a full-page PNG ``out/test-screenshots/<name>.png`` (out/ is not in git).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from tests.conftest import ROOT, require_program
from tests.e2e.browser.live import LiveServer, serve
from tests.unit.web.conftest import build_world

SCREENSHOTS = ROOT / "out" / "test-screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def chromium() -> str:
    return require_program("chromium", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    world = build_world(tmp_path_factory.mktemp("browser"))
    with serve(world.app) as url:
        yield LiveServer(url=url, world=world)


@pytest.fixture(scope="module")
def browser(chromium: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # launch() starts chromium on a new temporary profile (a fresh user-data-dir) each time.
        launched = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser, server: LiveServer) -> Iterator[Page]:
    context = browser.new_context(base_url=server.url, locale="en-GB", timezone_id="UTC")
    context.set_default_timeout(TIMEOUT_MS)
    opened = context.new_page()
    yield opened
    context.close()


@pytest.fixture
def shot() -> Callable[..., Path]:
    """``shot(page, name, full_page=True)``: save ``out/test-screenshots/<name>.png``; returns its path."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def save(page: Page, name: str, *, full_page: bool = True) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        print(f"screenshot: {path}")
        return path

    return save
