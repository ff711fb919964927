"""A real browser on a real ``herald up``: write an issue, publish it, watch it go out.

Headless Chromium (Debian's ``chromium`` package, installed by ``make browser``)
driven by Playwright — never ``playwright install``, which downloads a browser
build of its own. The page must update its progress bar and status from the
server-sent events alone (no reload), under the strict CSP, with no violation.

Without Chromium or Playwright the test is skipped on a developer's machine and
FAILS in CI (``CI=true``): a missing browser must not pass silently there.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from herald.core.db import Database
from tests.e2e.test_newcomer import admin_login, wait_ready
from tests.support.database import free_port
from tests.support.processes import herald_env, herald_process, wait_exit
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
SUBSCRIBERS = 300
ISSUE_URL = re.compile(r"/admin/issues/([0-9a-f-]{36})$")

# Runs in every page before its own scripts (through the DevTools protocol, so the
# page's CSP does not apply to it): records CSP violations the page would report.
RECORD_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


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
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO subscriptions (id, email, name, status, confirmed_at)"
            " VALUES ($1, $2, $3, 'confirmed', now())",
            [(uuid.uuid4(), f"reader{n}@example.com", f"Reader {n}") for n in range(count)],
        )


@pytest.mark.slow
async def test_publishing_in_a_browser_shows_live_progress(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    await add_confirmed_subscribers(db, SUBSCRIBERS)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = herald_env(
        HERALD_DATA_DIR=str(public_tmpdir("herald-browser-")),
        HERALD_DATABASE_URL=database_url,
        HERALD_PORT=str(port),
        # Slow enough to watch: ~3 s for 300 emails, in batches of 10.
        HERALD_DELIVERY__RATE_PER_SECOND="100",
        HERALD_DELIVERY__BATCH_SIZE="10",
        HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.2",
    )
    log_path = tmp_path / "up.log"
    async with herald_process("up", env=env, log_path=log_path) as up:
        await wait_ready(base_url)
        login = await admin_login(log_path)
        async with playwright_api.async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
            )
            try:
                context = await browser.new_context(
                    base_url=base_url, timezone_id="Asia/Kolkata", locale="en-GB"
                )
                await drive_the_browser(context, login.group(1), base_url)
            finally:
                await browser.close()
        up.send_signal(signal.SIGTERM)
        assert await wait_exit(up, 60) == 0, log_path.read_text()
    log = log_path.read_text()
    assert '"level": "error"' not in log, log


async def preview_frame_text(page: Any) -> str:
    """The editor's preview frame's text, or "" while there is none: the editor replaces
    the frame for each render, so a frame found a moment ago may be gone (detached)."""
    from playwright.async_api import Error as PlaywrightError

    frame = page.frame(name="preview-frame")
    if frame is None:
        return ""
    try:
        return str(await frame.text_content("body") or "")
    except PlaywrightError:
        return ""


async def drive_the_browser(context: Any, password: str, base_url: str) -> None:
    await context.add_init_script(RECORD_VIOLATIONS)
    page = await context.new_page()
    problems: list[str] = []

    def on_console(msg: Any) -> None:
        url = msg.location.get("url", "") if msg.location else ""
        if msg.type in {"error", "warning"} and not url.endswith("/favicon.ico"):
            problems.append(f"console {msg.type}: {msg.text} ({url})")

    page.on("console", on_console)
    page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    page.set_default_timeout(15_000)

    # Log in with the password `herald up` printed.
    await page.goto("/login")
    await page.fill("#username", "admin")
    await page.fill("#password", password)
    await page.click("button[type=submit]")
    await page.wait_for_url("**/admin/dashboard")

    # Write a draft.
    await page.click("a[href='/admin/issues']")
    await page.click("text=New issue")
    await page.fill("#title", "Browser-made issue")
    await page.check("input[name=format][value=markdown]")
    await page.fill("#markdown", "Hello **{{ subscriber.name }}**, this went out live.")
    # The editor's preview follows the typing: the sandboxed frame and the text part.
    for _ in range(100):  # polled: the page's CSP forbids wait_for_function's eval
        if "Sample Subscriber" in (await page.text_content("#preview-text") or ""):
            break
        await page.wait_for_timeout(100)
    assert "this went out live." in (await page.text_content("#preview-text") or "")
    for _ in range(100):
        if "Hello Sample Subscriber" in await preview_frame_text(page):
            break
        await page.wait_for_timeout(100)
    assert "this went out live." in await preview_frame_text(page)
    await page.fill("#markdown", "Hello **{{ subscriber.name }}**, this went out live!")
    for _ in range(100):
        if "live!" in await preview_frame_text(page):
            break
        await page.wait_for_timeout(100)
    assert "this went out live!" in await preview_frame_text(page)
    await page.click("text=Save draft")
    await page.wait_for_url(re.compile(r".*/admin/issues/[0-9a-f-]{36}$"))
    match = ISSUE_URL.search(page.url)
    assert match, page.url
    issue_url = f"/admin/issues/{match.group(1)}"
    assert await page.text_content("#issue-status") == "draft"
    assert "The draft has been saved." in (await page.text_content("main") or "")
    # schedule.js chose the browser's time zone (Chromium's ICU may name it by its old name).
    zone = await page.input_value("#timezone")
    assert zone in {"Asia/Kolkata", "Asia/Calcutta"}

    # The preview runs under its own CSP (the email's inline styles allowed).
    preview = await context.new_page()
    await preview.goto(f"{issue_url}/preview?format=html")
    assert "Hello admin, this went out live!" in (await preview.text_content("body") or "")
    assert await preview.evaluate("window.__cspViolations") == []
    await preview.close()

    # Schedule it in the browser's zone, then publish it early.
    await page.fill("#scheduled_at", "2099-01-31T09:30")
    await page.click("#schedule-form button[type=submit]")
    await page.wait_for_url(f"{base_url}{issue_url}")
    assert await page.text_content("#issue-status") == "scheduled"
    assert f"scheduled for 2099-01-31 09:30 {zone} (UTC+05:30; 2099-01-31 04:00 UTC)" in (
        await page.text_content("main") or ""
    )
    await page.wait_for_timeout(1500)  # the stream's first event has arrived by now
    assert await page.eval_on_selector("#progress-bar", "el => el.value") == 0
    assert await page.text_content("#progress-summary") == "Not published yet."

    # Publish (the confirmation states the count), then watch without reloading.
    await page.click("#publish")
    await page.wait_for_url(f"{base_url}{issue_url}/publish")
    assert f"It goes to {SUBSCRIBERS} confirmed subscribers" in (
        await page.text_content("#publish-count") or ""
    )
    await page.click("#confirm-publish")
    await page.wait_for_url(f"{base_url}{issue_url}")
    assert "The issue is published: it is being queued for every confirmed subscriber." in (
        await page.text_content("main") or ""
    )
    await page.evaluate("window.__samePage = true")
    seen: set[float] = set()
    for _ in range(600):
        value = float(await page.eval_on_selector("#progress-bar", "el => el.value"))
        seen.add(value)
        if await page.text_content("#issue-status") == "sent":
            break
        await page.wait_for_timeout(100)
    assert await page.text_content("#issue-status") == "sent", sorted(seen)
    assert await page.eval_on_selector("#progress-bar", "el => el.value") == 100
    assert await page.text_content("#progress-summary") == f"100% of {SUBSCRIBERS} recipients"
    assert await page.text_content("[data-count=sent]") == str(SUBSCRIBERS)
    assert await page.text_content("[data-count=queued]") == "0"
    assert await page.is_visible("#progress-done")
    assert await page.evaluate("window.__samePage") is True, "the page was reloaded"
    assert any(0 < v < 100 for v in seen), f"no intermediate progress seen: {sorted(seen)}"

    violations = await page.evaluate("window.__cspViolations")
    assert violations == [], violations
    assert problems == [], problems
