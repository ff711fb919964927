"""A reader's web copy ("view in browser") in a real browser, on a real ``herald up``: the
fixture issue with every Markdown construct (plus a script and an inline handler the
editor pasted) is published, the worker sends it to the outbox, and the link in the
delivered email opens the copy. It shows the email's own styles and image, runs no
script, overflows nothing at 375 px, and is screenshotted at 1280 and 375 px, light and
dark, into /tmp/herald-screens-webcopy, with the 404 page a tampered link gets.
"""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from tests.e2e.test_email_screens import CHART
from tests.support.browser import Camera, camera_page, chromium, herald_up, require_browser
from tests.unit.test_issue_emails import FIXTURES

HUMAN_COPY = Path("/tmp/herald-screens-webcopy")  # noqa: S108 - a fixed place for a human to look
SCRIPTS = (
    '\n\n<script>window.__ran = "script"</script>\n\n'
    '<p><img src="https://example.org/none.png" alt="" onerror="window.__ran = \'handler\'"></p>\n'
)
# Expected on the console: the sandbox refusing the two scripts, and the image that fails
# on purpose (its onerror handler is the second script).
BLOCKED = re.compile(r"Blocked script execution .* sandboxed and the 'allow-scripts'")
MISSING = re.compile(r"Failed to load resource: .*status of 404")
VIEW = re.compile(r'href="https?://[^/"]+(/v/[^"]+)"')


@pytest.mark.slow
async def test_the_web_copy_shows_the_email_and_runs_nothing(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    async with herald_up(database_url, tmp_path / "up.log", "herald-webcopy-") as herald:
        path = await send_and_find_link(db, settings)
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            context = await browser.new_context(base_url=herald.base_url)
            await context.route("https://example.org/**", serve_chart)
            page = await camera_page(context, camera)
            response = await page.goto(path)
            assert response.status == 200
            assert response.headers["x-robots-tag"] == "noindex, nofollow, noarchive"
            assert "Ada Lovelace" in (await page.text_content("body") or "")
            assert await page.evaluate("typeof window.__ran") == "undefined", "no script ran"
            styled = await page.evaluate(
                "getComputedStyle(document.querySelector('.h-content h1')).fontWeight"
            )
            assert int(styled) >= 600, "the email's inline styles apply"
            chart = await page.evaluate(
                "[...document.images].find(i => i.src.endsWith('chart.png')).naturalWidth"
            )
            assert chart == 1200, "the email's images show"
            await camera.shoot(page, "webcopy")
            tampered = path[:-1] + ("B" if path[-1] == "A" else "A")
            refused = await page.goto(tampered)
            assert refused.status == 404
            await camera.shoot(page, "webcopy-404")
            await context.close()
    camera.copy_for_a_human(HUMAN_COPY)
    blocked = [p for p in camera.problems if BLOCKED.search(p)]
    assert len(blocked) == 2, "the pasted script and the inline handler were refused"
    problems = [p for p in camera.problems if not (BLOCKED.search(p) or MISSING.search(p))]
    assert problems == [], "\n".join(problems)
    assert camera.foreign_hosts() <= {"example.org"}, camera.requested


async def send_and_find_link(db: Database, settings: Settings) -> str:
    """Publish the fixture issue to one reader; the path of the web copy in what they got."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status) "
            "VALUES (gen_random_uuid(), 'ada@example.org', 'Ada Lovelace', 'confirmed')"
        )
    markdown = (FIXTURES / "every_construct.md").read_text(encoding="utf-8") + SCRIPTS
    content = IssueContent.parse(title="Issue 42: what happened this week", markdown=markdown)
    service = IssueService(db, settings)
    await service.publish(await service.create_draft(content, None))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with db.connection() as conn:
            html = await conn.fetchval(
                "SELECT html_body FROM outbox_messages WHERE recipient = 'ada@example.org'"
            )
        if html:
            found = VIEW.search(html)
            assert found, "the delivered email links its web copy"
            return found.group(1)
        await asyncio.sleep(0.2)
    raise AssertionError("the issue was not delivered within 60 s")


async def serve_chart(route: Any) -> None:
    if route.request.url == "https://example.org/chart.png":
        await route.fulfill(status=200, content_type="image/svg+xml", body=CHART)
    else:
        await route.fulfill(status=404, body="")
