"""The browser tests' shared set-up: Debian's Chromium driven by Playwright on a real
``herald up``.

Headless Chromium (Debian's ``chromium`` package, installed by ``make browser``) driven by
Playwright — never ``playwright install``, which downloads a browser build of its own.
Without Chromium or Playwright a browser test is skipped on a developer's machine and
FAILS in CI (``CI=true``): a missing browser must not pass silently there.

- ``require_browser()``: the Playwright module, or skip (fail in CI).
- ``herald_up(...)``: ``herald up`` on a free port, ready, its admin password read from its
  log; stopped with SIGTERM and checked to exit 0.
- ``chromium(...)``: the headless browser with the project's arguments, closed on exit.
- ``Camera``: screenshots at desktop and phone widths in light and dark, and the checks made
  on every page (console errors, CSP violations, overflow, requests to foreign hosts).
- ``camera_page(...)``: a page watched by the camera; ``sign_in(...)``.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest

from herald.core.db import Database
from tests.support.database import free_port
from tests.support.processes import (
    admin_login,
    herald_env,
    herald_process,
    wait_exit,
    wait_ready,
)
from tests.support.tmp import public_tmpdir

CHROMIUM = os.environ.get("HERALD_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Runs in every page before its own scripts (through the DevTools protocol, so the
# page's CSP does not apply to it): records CSP violations the page would report.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""
WIDTHS = {"desktop": (1280, 800), "phone": (375, 740)}
SCHEMES = ("light", "dark")


def skip_or_fail(message: str) -> NoReturn:
    """Skip the test with ``message`` on a developer's machine; fail it in CI."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require_browser() -> Any:
    """The Playwright module, or skip (fail in CI) with the reason."""
    problems = []
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        problems.append(f"no Chromium at {CHROMIUM} (run `make browser`)")
    try:
        from playwright import async_api
    except ImportError:
        problems.append("the playwright package is not installed (make installs dev deps)")
        async_api = None
    if problems:
        message = "; ".join(problems)
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"the browser test cannot run in CI: {message}")
        pytest.skip(message)
    return async_api


async def add_confirmed_subscribers(db: Database, count: int) -> None:
    """``count`` confirmed subscribers, reader0@example.com onwards."""
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO subscriptions (id, email, name, status, confirmed_at)"
            " VALUES ($1, $2, $3, 'confirmed', now())",
            [(uuid.uuid4(), f"reader{n}@example.com", f"Reader {n}") for n in range(count)],
        )


@dataclass
class Herald:
    """A running ``herald up``: where it listens, its environment, its log, the admin's
    password it printed."""

    port: int
    base_url: str
    env: dict[str, str]
    log_path: Path
    password: str


@asynccontextmanager
async def herald_up(
    database_url: str, log_path: Path, data_prefix: str, **settings: str
) -> AsyncIterator[Herald]:
    """Run ``herald up`` on ``database_url`` and a free port (its data in a fresh
    ``data_prefix`` temp dir, plus ``settings`` as HERALD_* variables); yield once it is
    ready and has printed the admin login. On leaving, stop it with SIGTERM and assert it
    exits 0 (its log as the message); if the body fails, the process is killed instead."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = herald_env(
        HERALD_DATA_DIR=str(public_tmpdir(data_prefix)),
        HERALD_DATABASE_URL=database_url,
        HERALD_PORT=str(port),
        **settings,
    )
    async with herald_process("up", env=env, log_path=log_path) as up:
        await wait_ready(base_url)
        password = (await admin_login(log_path)).group(1)
        yield Herald(port, base_url, env, log_path, password)
        up.send_signal(signal.SIGTERM)
        exit_code = await wait_exit(up, 60)
        assert exit_code == 0, log_path.read_text()  # noqa: ASYNC240 - read only on failure


@asynccontextmanager
async def chromium(playwright_api: Any) -> AsyncIterator[Any]:
    """Headless Chromium (``CHROMIUM``, with ``CHROMIUM_ARGS``) from ``require_browser()``'s
    Playwright module; the browser is closed on leaving, whatever happened."""
    async with playwright_api.async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(page: Any, username: str, password: str) -> None:
    """Sign in on /login with the form and wait for the dashboard."""
    await page.goto("/login")
    await page.fill("#username", username)
    await page.fill("#password", password)
    await page.click("main button[type=submit]")
    await page.wait_for_url("**/admin/dashboard")


class Camera:
    """Screenshots the current page of each context in every width and scheme, and checks it."""

    def __init__(self, folder: Path, port: int) -> None:
        """Screenshots go to ``folder`` (made here, it must not exist); ``port`` is Herald's."""
        folder.mkdir()
        self.folder = folder
        self.port = port
        self.problems: list[str] = []
        self.requested: list[str] = []
        self.shots: list[Path] = []

    def watch(self, context: Any) -> None:
        """Record every URL the context requests (see ``foreign_hosts``)."""
        context.on("request", lambda request: self.requested.append(request.url))

    def watch_page(self, page: Any) -> None:
        """Record the page's console errors and warnings and its uncaught errors as problems."""

        def on_console(msg: Any) -> None:
            # The error pages the walks ask for on purpose (a 404, a refused new issue):
            # their status is logged.
            expected = re.search(r"/(no-such-page|admin/issues/new)$", page.url) is not None
            refused = expected and re.search(r"status of 4\d\d", msg.text) is not None
            if msg.type in {"error", "warning"} and not refused:
                self.problems.append(f"{page.url}: console {msg.type}: {msg.text}")

        page.on("console", on_console)
        page.on("pageerror", lambda exc: self.problems.append(f"{page.url}: page error: {exc}"))

    async def shoot(self, page: Any, name: str) -> None:
        """Screenshot ``page`` as ``name-<width>-<scheme>.png`` in every width and scheme;
        record overflow at 375 and 360 px and the page's CSP violations as problems."""
        await page.wait_for_load_state("load")
        for width_name, (width, height) in WIDTHS.items():
            await page.set_viewport_size({"width": width, "height": height})
            for scheme in SCHEMES:
                await page.emulate_media(color_scheme=scheme)
                path = self.folder / f"{name}-{width_name}-{scheme}.png"
                await page.screenshot(path=str(path), full_page=True)
                self.shots.append(path)
        for narrow in (375, 360):  # nothing wider than the phone: tables scroll in their box
            await page.set_viewport_size({"width": narrow, "height": 740})
            overflow = await page.evaluate("document.documentElement.scrollWidth - innerWidth")
            if overflow > 0:
                self.problems.append(f"{name}: {overflow}px wider than a {narrow}px phone")
        violations = await page.evaluate("window.__cspViolations || []")
        self.problems += [f"{name}: CSP violation {v}" for v in violations]
        await page.set_viewport_size({"width": 1280, "height": 800})
        await page.emulate_media(color_scheme="light")

    def foreign_hosts(self) -> set[str]:
        """The hosts other than Herald's that any watched context requested."""
        local = {f"127.0.0.1:{self.port}"}
        return {
            urlsplit(url).netloc
            for url in self.requested
            if not url.startswith(("data:", "about:"))
        } - local

    def copy_for_a_human(self, human_copy: Path) -> None:
        """Replace ``human_copy`` with a copy of the screenshots and say where both are."""
        if human_copy.exists():
            shutil.rmtree(human_copy)
        shutil.copytree(self.folder, human_copy)
        sys.stdout.write(f"\n{len(self.shots)} screenshots in {self.folder} (copy: {human_copy})\n")


async def camera_page(context: Any, camera: Camera) -> Any:
    """A new page of ``context`` that records CSP violations, with the context's requests
    and the page's console watched by ``camera``, and a 15 s default timeout."""
    await context.add_init_script(RECORD_VIOLATIONS)
    camera.watch(context)
    page = await context.new_page()
    camera.watch_page(page)
    page.set_default_timeout(15_000)
    return page
