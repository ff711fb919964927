"""A list's welcome email end to end in a real browser (the deliverability issue, item 4).

On a real ``herald up`` (web and worker, outbox provider): the editor writes and saves a
welcome email for a list (its page and the preview frame screenshotted), a visitor signs up
to the list and follows the confirmation link, and the welcome goes out through the queue
to the outbox exactly once; its HTML is screenshotted as a reader's client would show it, at
1280 and 375 px in both schemes (a copy for a human in /tmp/herald-screens-h6).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from herald.core.db import Database
from tests.support.browser import Camera, camera_page, chromium, herald_up, require_browser
from tests.support.processes import outbox
from tests.support.queue import wait_until

HUMAN_COPY = Path("/tmp/herald-screens-h6")  # noqa: S108 - a fixed place for a human to look
CONFIRM = re.compile(r"http://\S+/subscriptions/confirm\?subscription_token=[A-Za-z0-9]+")
BODY = """# Hello {{ subscriber.name }}, welcome to the Weekly Digest

Every **Friday** you get the week's five best links, with a line on why each matters.

- Reply to any issue: a person reads it.
- Past issues are in the [archive](https://example.org/archive).

See you on Friday!"""


@pytest.mark.slow
async def test_the_welcome_email_is_edited_previewed_and_sent_once_on_confirmation(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    async with db.connection() as conn:
        list_id = await conn.fetchval(
            "INSERT INTO lists (slug, name, description) VALUES ('weekly', 'Weekly Digest',"
            " 'The week in five links') RETURNING id"
        )
    async with herald_up(
        database_url,
        tmp_path / "up.log",
        "herald-welcome-",
        HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.2",
    ) as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            page = await camera_page(await browser.new_context(base_url=herald.base_url), camera)
            await page.goto("/login")
            await page.fill("#username", "admin")
            await page.fill("#password", herald.password)
            await page.click("main button[type=submit]")
            await page.wait_for_url("**/admin/dashboard")

            await page.goto(f"/admin/lists/{list_id}")
            await page.click("text=Write a welcome email")
            await page.wait_for_url(f"**/admin/lists/{list_id}/welcome")
            await camera.shoot(page, "welcome-editor-new")
            await page.check("input[name=enabled]")
            await page.fill("#welcome-subject", "Welcome to the Weekly Digest")
            await page.fill("#welcome-body", "{% if %}")
            await page.click("main button[type=submit]:text('Save')")
            await page.wait_for_load_state("load")
            assert "template error" in (await page.text_content("main") or "")
            await camera.shoot(page, "welcome-editor-refused")
            await page.fill("#welcome-body", BODY)
            await page.click("main button[type=submit]:text('Save')")
            await page.wait_for_url(f"**/admin/lists/{list_id}/welcome")
            frame = page.frame_locator("#welcome-preview")
            await frame.locator("h1", has_text="Hello Sample Subscriber").wait_for()
            await camera.shoot(page, "welcome-editor-saved")
            # A full-page shot leaves a frame below the phone's first screen unpainted:
            # the preview itself, scrolled into view at 375 px.
            await page.set_viewport_size({"width": 375, "height": 740})
            await page.locator("#welcome-preview").scroll_into_view_if_needed()
            await frame.locator("h1", has_text="Hello Sample Subscriber").wait_for()
            await page.locator(".design-preview").screenshot(
                path=str(camera.folder / "welcome-editor-preview-phone-light.png")
            )
            await page.set_viewport_size({"width": 1280, "height": 800})
            await page.goto(f"/admin/lists/{list_id}")
            await camera.shoot(page, "list-with-welcome")

            public = await camera_page(await browser.new_context(base_url=herald.base_url), camera)
            await public.goto("/l/weekly")
            await public.fill("#name", "Ada Lovelace")
            await public.fill("#email", "ada@example.com")
            await public.click("main button[type=submit]")
            await public.wait_for_load_state("load")
            printed = ""

            async def printed_a(pattern: re.Pattern[str]) -> bool:
                nonlocal printed
                printed = await outbox(herald.env, "ada@example.com")
                return pattern.search(printed) is not None

            await wait_until(lambda: printed_a(CONFIRM), timeout=60, interval=0.2)
            link = CONFIRM.search(printed)
            assert link
            for _ in range(2):  # the link followed twice: one welcome
                await public.goto(link.group(0))
            await wait_until(
                lambda: printed_a(re.compile("Welcome to the Weekly Digest")), timeout=60
            )
            async with db.connection() as conn:
                rows = await conn.fetch(
                    "SELECT html_body, headers::text AS headers FROM outbox_messages"
                    " WHERE recipient = 'ada@example.com'"
                    " AND subject = 'Welcome to the Weekly Digest'"
                )
                statuses = await conn.fetch("SELECT status FROM deliveries WHERE kind = 'welcome'")
            assert len(rows) == 1
            assert [r["status"] for r in statuses] == ["sent"]
            assert "Hello Ada Lovelace" in rows[0]["html_body"]

            # Its one-click link leaves this list alone: the page names it.
            headers = dict(tuple(h) for h in json.loads(rows[0]["headers"]))
            await public.goto(headers["List-Unsubscribe"].strip("<>"))
            assert "Stop sending Weekly Digest" in (await public.text_content("main") or "")
            await camera.shoot(public, "welcome-unsubscribe")

            reader = await browser.new_context()  # the email as a client shows it
            email_page = await reader.new_page()
            await email_page.set_content(rows[0]["html_body"])
            camera.requested.clear()  # set_content: no request to Herald's own host
            await camera.shoot(email_page, "welcome-email")

    camera.copy_for_a_human(HUMAN_COPY)
    # The refused save is a 400 on purpose (its page and its preview frame): the console says so.
    problems = [p for p in camera.problems if "status of 400" not in p]
    assert problems == [], "\n".join(problems)
