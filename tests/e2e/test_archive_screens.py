"""The public archive in a real browser (the deliverability issue, item 7): a list's archive
index and an issue's page on a real ``herald up``, screenshotted at 1280 and 375 px (a copy
for a human in /tmp/herald-screens-h9), with the camera's checks: no CSP violation, no
console error, no request to another host, nothing wider than a phone."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from herald.core.db import Database
from herald.issues.domain import IssueContent
from tests.integration.test_archive import T0, sent_issue
from tests.support.browser import (
    Camera,
    camera_page,
    chromium,
    herald_up,
    require_browser,
    sign_in,
)

HUMAN_COPY = Path("/tmp/herald-screens-h9")  # noqa: S108 - a fixed place for a human to look
BODY = """Dear {{ subscriber.name }},

This week in **{{ subscriber.attributes.city | default('your town') }}**: three things worth
your time, and one to skip.

## The three

1. A [long read on tides](https://example.org/tides) that explains the moon properly.
2. A recipe for bread that needs no kneading at all, just patience and a warm kitchen.
3. The council's new cycling map (it finally shows the hills).

> "The best time to plant a tree was twenty years ago. The second best time is now."

| Day | Event | Where |
|-----|-------|-------|
| Mon | Market | Square |
| Thu | Concert | Old church |

See you next Friday.
"""


@pytest.mark.slow
async def test_the_archive_index_and_an_issue_page_in_a_browser(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO lists (slug, name, description) VALUES ('weekly', 'Weekly Digest',"
            " 'The week in five links, every Friday.\n\nWritten by people, for people.')"
        )
    content = IssueContent.parse(title="Tides, bread and hills", markdown=BODY)
    titles = [
        "Welcome to the Weekly Digest",
        "<script>alert('x')</script> & other things we do not run",
        "مرحبا بالعالم — عدد ٣",
        "🎉 Our hundredth issue 🎉",
        "A very long title " * 10,
    ]
    for n, title in enumerate(titles):
        await sent_issue(db, title.strip(), at=T0 + timedelta(days=7 * n))
    _, slug = await sent_issue(
        db, content.title, html=content.html, at=T0 + timedelta(days=7 * len(titles))
    )
    _, video = await sent_issue(  # the sanitiser drops the video, not what follows it
        db,
        "Our studio tour",
        html='<p>Before the film.</p><video controls><source src="https://example.org/t.mp4"'
        ' type="video/mp4">Your mail app cannot play it.</video><p>After the film.</p>',
        at=T0 - timedelta(days=7),
    )
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE newsletter_issues SET preheader = 'Three things worth your time'"
            " WHERE archive_slug = $1",
            slug,
        )
    async with herald_up(database_url, tmp_path / "up.log", "herald-archive-") as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            page = await camera_page(await browser.new_context(base_url=herald.base_url), camera)
            await page.goto("/archive/weekly")
            assert await page.locator("ol.issues li").count() == len(titles) + 2
            await camera.shoot(page, "archive-index")
            await page.click(f"a[href$='/archive/weekly/{slug}']")
            await page.wait_for_url(f"**/archive/weekly/{slug}")
            text = await page.text_content("main") or ""
            assert "Dear reader," in text
            assert "your town" in text
            await camera.shoot(page, "archive-issue")
            await page.goto(f"/archive/weekly/{video}")
            assert "After the film." in (await page.text_content("main") or "")
            await camera.shoot(page, "archive-issue-after-a-video")
            await page.goto("/archive/weekly/script-alert-x-script-other-things-we-do-not-run")
            await camera.shoot(page, "archive-issue-hostile-title")
            await page.click("header a.subscribe")
            await page.wait_for_url("**/l/weekly")
            await camera.shoot(page, "list-page-with-archive-link")
            await page.click("text=Read past issues")
            await page.wait_for_url("**/archive/weekly")
            # The editor's choice: the "Public archive" checkbox.
            await sign_in(page, "admin", herald.password)
            await page.goto("/admin/issues/new")
            assert not await page.is_checked("input[name=public]")
            await page.check("input[name=public]")
            await page.locator("#public-choice").scroll_into_view_if_needed()
            await camera.shoot(page, "issue-editor-public-choice")
        camera.copy_for_a_human(HUMAN_COPY)
        assert not camera.problems, camera.problems
        assert not camera.foreign_hosts(), camera.foreign_hosts()
