"""A real browser on a real ``herald up``: write an issue, publish it, watch it go out.

Headless Chromium (Debian's ``chromium`` package, installed by ``make browser``)
driven by Playwright (the set-up in tests/support/browser.py). The page must update its
progress bar and status from the server-sent events alone (no reload), under the strict
CSP, with no violation.

Without Chromium or Playwright the test is skipped on a developer's machine and
FAILS in CI (``CI=true``): a missing browser must not pass silently there.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from herald.core.db import Database
from tests.support.browser import (
    RECORD_VIOLATIONS,
    add_confirmed_subscribers,
    chromium,
    herald_up,
    require_browser,
)

SUBSCRIBERS = 300
ISSUE_URL = re.compile(r"/admin/issues/([0-9a-f-]{36})$")


@pytest.mark.slow
async def test_publishing_in_a_browser_shows_live_progress(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    await add_confirmed_subscribers(db, SUBSCRIBERS)
    log_path = tmp_path / "up.log"
    async with (
        herald_up(
            database_url,
            log_path,
            "herald-browser-",
            # Slow enough to watch: ~3 s for 300 emails, in batches of 10.
            HERALD_DELIVERY__RATE_PER_SECOND="100",
            HERALD_DELIVERY__BATCH_SIZE="10",
            HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.2",
        ) as herald,
        chromium(playwright_api) as browser,
    ):
        context = await browser.new_context(
            base_url=herald.base_url, timezone_id="Asia/Kolkata", locale="en-GB"
        )
        await drive_the_browser(context, herald.password, herald.base_url)
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
    # The editor's preview follows the typing: the inbox line and the sandboxed frame.
    for _ in range(100):  # polled: the page's CSP forbids wait_for_function's eval
        if "Sample Subscriber" in (await page.text_content("#preview-preheader") or ""):
            break
        await page.wait_for_timeout(100)
    assert "this went out live." in (await page.text_content("#preview-preheader") or "")
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
    assert "The issue is published: it is being queued for the readers it targets." in (
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
