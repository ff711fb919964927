"""Outgoing webhooks through real processes and a real browser: ``herald up`` (web and
worker) sends a sign-up's event to a local receiver that verifies every request with the
``standardwebhooks`` package; the admin pages — the empty list, the endpoint with its
secret shown once, a failing endpoint, one Herald disabled, a refused URL — are
screenshot at 1280 and 375 px in light and dark (copied to /tmp/herald-screens-H7) with
the camera's checks: no CSP violation, no console error, nothing wider than a phone."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from herald.core.db import Database
from tests.support.browser import Camera, camera_page, chromium, herald_up, require_browser
from tests.support.queue import wait_until
from tests.support.webhook_receiver import receiver

HUMAN_COPY = Path("/tmp/herald-screens-H7")  # noqa: S108 - a fixed place for a human to look


@pytest.mark.slow
async def test_webhook_pages_and_a_real_worker(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    async with (
        receiver() as hook,
        herald_up(
            database_url,
            tmp_path / "up.log",
            "herald-webhooks-",
            HERALD_WEBHOOKS__POLL_INTERVAL_SECONDS="0.2",
            HERALD_WEBHOOKS__RETRY_BASE_SECONDS="0.2",
            HERALD_WEBHOOKS__RETRY_MAX_SECONDS="0.5",
            HERALD_WEBHOOKS__MAX_ATTEMPTS="2",
            HERALD_WEBHOOKS__DISABLE_AFTER_HOURS="0",
            HERALD_WEBHOOKS__DISABLE_AFTER_FAILURES="4",
        ) as herald,
    ):
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            context = await browser.new_context(base_url=herald.base_url)
            page = await camera_page(context, camera)
            await sign_in(page, herald.password)
            await walk(page, camera, hook, herald.base_url)
    camera.copy_for_a_human(HUMAN_COPY)
    # The refused form is a 400 on purpose: the browser logs its status.
    refused = "/admin/webhooks: console error: Failed to load resource: the server responded"
    camera.problems = [p for p in camera.problems if refused not in p]
    assert camera.problems == [], "\n".join(camera.problems)
    assert camera.foreign_hosts() == set(), camera.requested


async def sign_in(page: Any, password: str) -> None:
    await page.goto("/login")
    await page.fill("#username", "admin")
    await page.fill("#password", password)
    await page.click("main button[type=submit]")
    await page.wait_for_url("**/admin/dashboard")


async def walk(page: Any, camera: Camera, hook: Any, base_url: str) -> None:
    await page.goto("/admin/webhooks")
    await camera.shoot(page, "webhooks-empty")

    # A refused URL: the form again, with the reason and what was typed.
    await page.fill("#webhook-url", "https://user:pw@example.com/hook")
    await page.fill("#webhook-description", "CRM sync")
    await page.check("input[value='subscriber.created']")
    await page.click("text=Add endpoint")
    assert "must not contain a user name or password" in (await page.text_content("main") or "")
    await camera.shoot(page, "webhooks-refused")

    await page.fill("#webhook-url", hook.url)
    await page.check("input[value='subscriber.confirmed']")
    await page.click("text=Add endpoint")
    await page.wait_for_selector("#webhook-secret")
    hook.secret = (await page.text_content("#webhook-secret") or "").strip()
    endpoint_url = await page.get_attribute("form.wide", "action")
    assert endpoint_url
    assert re.fullmatch(r"/admin/webhooks/[0-9a-f-]{36}", endpoint_url)
    await camera.shoot(page, "webhook-created")

    # A sign-up through the public form: the worker sends its event, signed.
    public = await page.context.new_page()
    await public.goto(base_url + "/")
    await public.fill("input[name=name]", "Ada")
    await public.fill("input[name=email]", "ada@example.com")
    await public.click("main button[type=submit]")
    await hook.wait_for(1, timeout=30)
    assert hook.types() == ["subscriber.created"]
    assert hook.verified()[0]["data"]["email"] == "ada@example.com"

    # The receiver breaks: retries, then the endpoint is disabled after four failures.
    hook.default = 500
    for n in range(3):
        await public.goto(base_url + "/")
        await public.fill("input[name=name]", f"Reader {n}")
        await public.fill("input[name=email]", f"reader{n}@example.com")
        await public.click("main button[type=submit]")
    await hook.wait_for(3, timeout=30)
    await page.goto(endpoint_url)
    await camera.shoot(page, "webhook-failing")
    await hook.wait_for(5, timeout=30)

    async def disabled() -> bool:
        await page.goto("/admin/webhooks")
        return "Disabled:" in (await page.text_content("main") or "")

    await wait_until(disabled, timeout=30, interval=0.5)
    await camera.shoot(page, "webhooks-disabled")
    await page.goto(endpoint_url)
    await camera.shoot(page, "webhook-disabled")
    await page.goto(endpoint_url + "?status=failed")
    await camera.shoot(page, "webhook-failed-messages")
    assert len(hook.verified()) >= 5  # every request, failed or not, verified

    # The receiver is fixed: enable the endpoint, replay everything that failed.
    hook.default = 204
    await page.click("text=Enable again")
    await page.wait_for_selector("text=Replay all")
    await camera.shoot(page, "webhook-enabled-again")
    before = len(hook.requests)
    await page.click("text=Replay all")
    await page.wait_for_selector("text=queued again")
    await hook.wait_for(before + 3, timeout=30)
    assert hook.types()[-3:] == ["subscriber.created"] * 3
