"""What the browser tests share: Debian's Chromium driven by Playwright (never a
downloaded browser), Billfold served by uvicorn in a thread of the test process, and a
page that fails its test on any error response or console error."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, sync_playwright
from sqlalchemy.engine import Engine

from billfold.core.config import Settings
from billfold.web.app import create_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"needs Debian's Chromium at {CHROMIUM} (make browser)")


def loopback_socket() -> socket.socket:
    """A listening socket on a free port of 127.0.0.1, so parallel runs never collide."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock


@dataclass(frozen=True)
class Served:
    origin: str
    settings: Settings


@contextmanager
def served(database_url: str, engine: Engine, data_dir: Path, **settings: object
           ) -> Iterator[Served]:
    """Billfold on ``database_url``, served by uvicorn in a thread of this process."""
    sock = loopback_socket()
    origin = f"http://127.0.0.1:{sock.getsockname()[1]}"
    config = Settings(database_url=database_url, base_url=origin, data_dir=data_dir,
                      **settings)  # type: ignore[arg-type]
    uv = uvicorn.Server(uvicorn.Config(create_app(config, engine), log_level="warning",
                                       access_log=False, lifespan="off"))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not uv.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            pytest.fail("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Served(origin, config)
    finally:
        uv.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextmanager
def checked_page(browser: Browser, *, locale: str = "en-US", bypass_csp: bool = False
                 ) -> Iterator[Page]:
    """A fresh page (and cookie jar). It fails the test on an error response or a console
    error, such as a stylesheet the Content-Security-Policy blocked; all but the favicon,
    which the pages do not have and Chromium asks for anyway. ``bypass_csp`` lets a test
    inject a checker script (axe-core) the CSP would rightly refuse."""
    context = browser.new_context(locale=locale, bypass_csp=bypass_csp)
    context.set_default_timeout(15_000)
    opened = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        where = message.location.get("url", "")
        if message.type == "error" and urlsplit(where).path != "/favicon.ico":
            errors.append(f"{message.text} ({where})")

    def on_response(response: Response) -> None:
        if response.status >= 400:
            errors.append(f"{response.status} {response.url}")

    opened.on("console", on_console)
    opened.on("response", on_response)
    try:
        yield opened
    finally:
        context.close()
    assert errors == []
