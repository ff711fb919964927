"""Engagement tracking in a real browser (issue 13 item 6): the editor's checkbox, a tracked
issue's results on its page, and the reader's switch in the preference centre, each at 1280
and 375 px in light and dark (copied to /tmp/herald-screens-h8 for a human to look at),
with the design walk's checks: no CSP violation, no console error, nothing wider than a
phone, no request to another host.

The clicks and opens are real requests to a real ``herald up``: the pixel and click URLs of
the email the outbox holds."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from herald.core.db import Database
from tests.support.browser import (
    Camera,
    add_confirmed_subscribers,
    camera_page,
    chromium,
    herald_up,
    require_browser,
    sign_in,
)
from tests.support.queue import wait_until

HUMAN_COPY = Path("/tmp/herald-screens-h8")  # noqa: S108 - a fixed place for a human to look
ISSUE_URL = re.compile(r"/admin/issues/[0-9a-f-]{36}$")
PIXEL = re.compile(r'<img src="(http://[^"]+/t/o/[^"]+\.gif)"')
CLICK = re.compile(r'href="(http://[^"]+/t/c/[^"]+)"')
PREFERENCES = re.compile(r"http://\S+/preferences\?token=[^\s<\"]+")
BODY = (
    "Hello **{{ subscriber.name }}**,\n\n"
    "- [The long read](https://example.org/long-read)\n"
    "- [Our podcast](https://podcast.example.org/episodes/42?utm_source=newsletter)\n"
    "- [A very long link to an archive page with many words in its address]"
    "(https://archive.example.org/2026/12/05/a-very-long-address-that-needs-to-wrap-on-phones)\n"
)
SAFARI = {"User-Agent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) Version/17.0 Safari"}


async def html_to(db: Database, recipient: str) -> str:
    async with db.connection() as conn:
        html = await conn.fetchval(
            "SELECT html_body FROM outbox_messages WHERE recipient = $1 ORDER BY id DESC LIMIT 1",
            recipient,
        )
    return html or ""


@pytest.mark.slow
async def test_engagement_pages_at_desktop_and_phone_widths(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    async with herald_up(
        database_url,
        tmp_path / "up.log",
        "herald-screens-h8-",
        HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.2",
    ) as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        await add_confirmed_subscribers(db, 12)
        async with chromium(playwright_api) as browser:
            page = await camera_page(await browser.new_context(base_url=herald.base_url), camera)
            await sign_in(page, "admin", herald.password)

            await page.goto("/admin/issues/new")
            await page.fill("#title", "Tracked issue")
            await page.check("input[name=format][value=markdown]")
            await page.fill("#markdown", BODY)
            await page.check("input[name=tracking]")
            await page.locator("#tracking-choice").scroll_into_view_if_needed()
            await camera.shoot(page, "editor-tracking")
            await page.click("text=Save draft")
            await page.wait_for_url(ISSUE_URL)
            issue_url = urlsplit(page.url).path
            await camera.shoot(page, "issue-tracked-draft")
            await page.click("#publish")
            await page.click("#confirm-publish")
            await page.wait_for_url(f"{herald.base_url}{issue_url}")

            async def sent() -> bool:
                async with db.connection() as conn:
                    done = await conn.fetchval(
                        "SELECT count(*) FROM deliveries WHERE kind = 'issue' AND status = 'sent'"
                    )
                return done == 12

            await wait_until(sent, timeout=60, interval=0.2)
            async with db.connection() as conn:  # as if sent an hour ago: people, not machines
                await conn.execute("UPDATE deliveries SET sent_at = now() - interval '1 hour'")
            async with httpx.AsyncClient() as client:
                for n in range(12):
                    html = await html_to(db, f"reader{n}@example.com")
                    pixel = PIXEL.search(html)
                    assert pixel
                    agent = {"User-Agent": "Mozilla/5.0"} if n % 4 == 0 else SAFARI  # Apple MPP
                    await client.get(pixel.group(1), headers=agent)
                    clicks = CLICK.findall(html)
                    assert len(clicks) == 3
                    for link in clicks[: n % 3 + 1]:
                        answer = await client.get(link, headers=SAFARI)
                        assert answer.status_code == 302
                    if n == 0:
                        await client.head(clicks[0], headers=SAFARI)  # a scanner
            await page.goto(issue_url)
            await page.locator("#engagement").scroll_into_view_if_needed()
            await camera.shoot(page, "issue-tracked-results")
            section = await page.text_content("#engagement") or ""
            assert "example.org/long-read" in section

            # The reader's switch, from the preference link of their email.
            public = await camera_page(await browser.new_context(base_url=herald.base_url), camera)
            link = PREFERENCES.search(await html_to(db, "reader3@example.com"))
            assert link
            await public.goto(link.group(0).replace("&amp;", "&"))
            await camera.shoot(public, "preferences-tracking")
            await public.uncheck("input[name=tracking]")
            await public.click("text=Save this choice")
            await public.wait_for_load_state("load")
            assert await public.is_visible("text=no tracking image")
            await camera.shoot(public, "preferences-tracking-off")

    camera.copy_for_a_human(HUMAN_COPY)
    assert camera.problems == [], "\n".join(camera.problems)
    assert camera.foreign_hosts() == set(), camera.requested
