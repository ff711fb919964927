"""Every page in a real browser, at desktop and phone widths, light and dark (issue 11 item 1).

Signs in to a real ``herald up`` and walks every admin page, ``/login`` and the public
subscription pages (home, "check your inbox", confirmed, unsubscribe, an error page),
screenshotting each at 1280 and 375 px in both colour schemes into a folder the test
prints (a copy goes to /tmp/herald-screens for a human to look at). On every page: no CSP
violation, no console error or warning, no request to any host but Herald's, and nothing
wider than a phone's screen at 375 or 360 px (tables scroll inside their own box).

Uses the Chromium set-up of tests/support/browser.py (Debian's package, `make browser`);
skipped without it on a developer's machine, failed without it in CI.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from herald.core.db import Database
from tests.support.browser import (
    Camera,
    add_confirmed_subscribers,
    camera_page,
    chromium,
    herald_up,
    require_browser,
)
from tests.support.processes import outbox
from tests.support.queue import wait_until

HUMAN_COPY = Path("/tmp/herald-screens")  # noqa: S108 - a fixed place for a human to look
CONFIRM = re.compile(r"http://\S+/subscriptions/confirm\?subscription_token=[A-Za-z0-9]+")
UNSUBSCRIBE = re.compile(r"http://\S+/unsubscribe/one-click\?token=[^\s>]+")
ISSUE_URL = re.compile(r"/admin/issues/[0-9a-f-]{36}$")


@pytest.mark.slow
async def test_every_page_at_desktop_and_phone_widths_in_light_and_dark(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    async with herald_up(
        database_url,
        tmp_path / "up.log",
        "herald-screens-",
        HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.2",
    ) as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            await walk_every_page(browser, camera, herald.base_url, herald.password, herald.env, db)

    camera.copy_for_a_human(HUMAN_COPY)
    assert len(camera.shots) >= 4 * 20
    assert camera.problems == [], "\n".join(camera.problems)
    assert camera.foreign_hosts() == set(), camera.requested


async def walk_every_page(
    browser: Any, camera: Camera, base_url: str, password: str, env: dict[str, str], db: Database
) -> None:
    page = await camera_page(await browser.new_context(base_url=base_url), camera)
    public = await camera_page(await browser.new_context(base_url=base_url), camera)

    # Signing in: the form, a failed attempt (an error alert), then the dashboard.
    await page.goto("/login")
    await camera.shoot(page, "login")
    await page.fill("#username", "admin")
    await page.fill("#password", "not the password")
    await page.click("main button[type=submit]")
    await page.wait_for_url("**/login")
    assert "Authentication failed" in (await page.text_content("main") or "")
    await camera.shoot(page, "login-failed")
    await page.fill("#username", "admin")
    await page.fill("#password", password)
    await page.click("main button[type=submit]")
    await page.wait_for_url("**/admin/dashboard")
    await camera.shoot(page, "dashboard")

    # htmx is loaded (with the nonce) on signed-in pages; uPlot is served for the charts.
    assert await page.evaluate("typeof window.htmx") == "object"
    for asset in ("uplot/uPlot.iife.min.js", "uplot/uPlot.min.css", "htmx/LICENSE"):
        response = await page.request.get(f"/static/vendor/{asset}")
        assert response.status == 200, asset

    # The theme toggle (script) overrides the system's scheme and is remembered.
    await page.emulate_media(color_scheme="light")
    await page.click("[data-theme-toggle]")
    assert await page.get_attribute("html", "data-theme") == "dark"
    await page.reload()
    assert await page.get_attribute("html", "data-theme") == "dark"
    assert await page.get_attribute("[data-theme-toggle]", "aria-pressed") == "true"
    await page.click("[data-theme-toggle]")
    assert await page.get_attribute("html", "data-theme") is None

    # Empty states, before there is anything.
    await page.goto("/admin/issues")
    await camera.shoot(page, "issues-empty")
    await page.goto("/admin/subscribers")
    await camera.shoot(page, "subscribers-empty")

    # A visitor subscribes and confirms.
    await public.goto("/")
    await camera.shoot(public, "home")
    # Inline validation: the browser refuses the form and the field says why.
    await public.fill("#name", "Ada Lovelace")
    await public.fill("#email", "not an address")
    await public.click("main button[type=submit]")
    assert await public.is_visible("#email + .invalid-msg")
    assert not await public.is_visible("#name + .invalid-msg")
    await camera.shoot(public, "home-invalid")
    await public.fill("#email", "ada@example.com")
    await public.click("main button[type=submit]")
    await public.wait_for_load_state("load")
    await camera.shoot(public, "subscribed")
    printed = ""

    async def printed_a(pattern: re.Pattern[str], recipient: str) -> bool:
        nonlocal printed
        printed = await outbox(env, recipient)
        return pattern.search(printed) is not None

    await wait_until(lambda: printed_a(CONFIRM, "ada@example.com"), timeout=60, interval=0.2)
    link = CONFIRM.search(printed)
    assert link
    await public.goto(link.group(0))
    await camera.shoot(public, "confirmed")
    await public.goto("/no-such-page")
    await camera.shoot(public, "error-404")

    await add_confirmed_subscribers(db, 24)

    # Write an issue, send it, look at it.
    await page.goto("/admin/issues/new")
    await camera.shoot(page, "issue-new")
    # A refused form comes back with what was typed and the reason, inline.
    await page.fill("#title", "The first issue")
    await page.check("input[name=format][value=markdown]")
    await page.click("text=Save draft")
    await page.wait_for_selector("#form-error")
    await camera.shoot(page, "issue-new-refused")
    await page.fill("#title", "The first issue")
    await page.check("input[name=format][value=markdown]")
    await page.fill("#markdown", "Hello **{{ subscriber.name }}**,\n\nthe news of the week.")
    await page.click("text=Save draft")
    await page.wait_for_url(ISSUE_URL)
    issue_url = urlsplit(page.url).path
    await camera.shoot(page, "issue-draft")
    await page.goto(f"{issue_url}/edit")
    await camera.shoot(page, "issue-edit")
    await page.goto(issue_url)
    await page.click("#publish")
    await page.wait_for_url(f"{base_url}{issue_url}/publish")
    await camera.shoot(page, "issue-publish-confirm")
    await page.click("#confirm-publish")
    await page.wait_for_url(f"{base_url}{issue_url}")
    await camera.shoot(page, "issue-publishing")
    for _ in range(600):  # progress.js updates the status live (no eval: the CSP forbids it)
        if await page.text_content("#issue-status") == "sent":
            break
        await page.wait_for_timeout(100)
    assert await page.text_content("#issue-status") == "sent"
    await page.goto(issue_url)
    await camera.shoot(page, "issue-sent")
    await page.goto("/admin/issues")
    await camera.shoot(page, "issues")
    await page.goto("/admin/newsletters")
    await camera.shoot(page, "newsletters")

    # The unsubscribe page a reader reaches from the issue's footer.
    await wait_until(lambda: printed_a(UNSUBSCRIBE, "reader1@example.com"), timeout=60)
    unsubscribe = UNSUBSCRIBE.search(printed)
    assert unsubscribe
    await public.goto(unsubscribe.group(0))
    await camera.shoot(public, "unsubscribe")

    # Subscribers.
    await page.goto("/admin/subscribers")
    await camera.shoot(page, "subscribers")
    await page.goto("/admin/subscribers?q=nobody")
    await camera.shoot(page, "subscribers-no-match")
    await page.click("text=show everyone")
    await page.click("text=ada@example.com")
    await page.wait_for_url(re.compile(r".*/admin/subscribers/[0-9a-f-]{36}$"))
    await camera.shoot(page, "subscriber")

    # Settings, the account menu, the development outbox.
    await page.goto("/admin/password")
    await camera.shoot(page, "settings-password")
    await page.goto("/admin/api-keys")
    await camera.shoot(page, "settings-api-keys-empty")
    await page.fill("#name", "CRM sync")
    await page.click("text=Create API key")
    await page.wait_for_selector("#new-api-key")
    await camera.shoot(page, "settings-api-keys")
    await page.click("details.account > summary")
    await camera.shoot(page, "account-menu")
    await page.goto("/dev/outbox")
    await camera.shoot(page, "dev-outbox")

    # Signing out is a form in the account menu; its flash is dismissible without script.
    await page.goto("/admin/dashboard")
    await page.click("details.account > summary")
    await page.click("text=Sign out")
    await page.wait_for_url("**/login")
    assert await page.is_visible("text=You have successfully logged out.")
    await camera.shoot(page, "signed-out")
    await page.click(".alert-close")
    assert not await page.is_visible("text=You have successfully logged out.")
