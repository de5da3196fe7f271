"""Helpers of the browser tests: serve the app on a free local port, sign in through the form.

Kept apart from ``conftest.py`` so test modules can import them under one module name.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from playwright.sync_api import Page
from tests.unit.web.conftest import PASSWORD, WebWorld


@dataclass
class LiveServer:
    """A running server: its base URL and the world (patients, accounts) behind it."""

    url: str
    world: WebWorld


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def serve(app: FastAPI, *, start_timeout_s: float = 30) -> Iterator[str]:
    """Serve ``app`` with uvicorn in a background thread on 127.0.0.1; yields the base URL.

    Raises:
        RuntimeError: the server did not start within ``start_timeout_s`` seconds.
    """
    import uvicorn

    port = free_port()
    # No websockets, no lifespan: the app needs neither, and fewer imports mean fewer warnings.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        http="h11",
        ws="none",
        lifespan="off",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="actnav-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def sign_in(page: Page, username: str) -> None:
    """Sign in through the login form (password of the test accounts) and wait for the next page."""
    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert "/login" not in page.url, f"sign-in as {username} failed: {page.url}"
