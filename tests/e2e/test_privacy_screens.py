"""The reader's privacy pages and the suppression list in Chromium, on a real ``herald up``:
the preference centre (lists to tick, saved, unsubscribed from all, the erase step and its
outcome, a forged link), the per-list unsubscribe page, and /admin/suppressions — at 1280
and 375 px in light and dark, into /tmp/herald-screens-privacy, each checked by the camera
(no CSP violation, console error, foreign host, or page wider than a phone)."""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from herald.core.db import Database
from herald.subscriptions.unsubscribe import make_token
from tests.support.browser import (
    Camera,
    camera_page,
    chromium,
    herald_up,
    require_browser,
    sign_in,
)
from tests.support.database import make_settings

HUMAN_COPY = Path("/tmp/herald-screens-privacy")  # noqa: S108 - for a human to look at
SECRET = "privacy-screens-secret-" + "k" * 32
# The pages asked for on purpose with a forged link answer 400.
REFUSED = re.compile(r"status of 400")


async def seed(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    """A reader in the default list, a public and a private list; an issue to the public
    one; suppressions of every kind."""
    reader = uuid.uuid4()
    issue = uuid.uuid4()
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status, confirmed_at, attributes)"
            " VALUES ($1, 'ada.lovelace@example.org', 'Ada Lovelace', 'confirmed', now(),"
            ' \'{"city": "London"}\')',
            reader,
        )
        news = await conn.fetchval(
            "INSERT INTO lists (slug, name, description) VALUES ('engine-notes',"
            " 'Engine notes', 'Monthly notes on the Analytical Engine, its programs and"
            " the people who build them.') RETURNING id"
        )
        insiders = await conn.fetchval(
            "INSERT INTO lists (slug, name, visibility) VALUES ('insiders', 'Insiders',"
            " 'private') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO lists (slug, name, description) VALUES ('events', 'Events',"
            " 'Talks and meet-ups, a few times a year.')"
        )
        await conn.executemany(
            "INSERT INTO list_memberships (list_id, subscriber_id, status, source, confirmed_at)"
            " VALUES ($1, $2, $3, 'subscribe', now())",
            [(news, reader, "confirmed"), (insiders, reader, "pending_confirmation")],
        )
        await conn.execute(
            "INSERT INTO newsletter_issues (id, title, html_content, text_content, status,"
            " published_at) VALUES ($1, 'Engine notes #12', '<p>hi</p>', 'hi', 'sent', now())",
            issue,
        )
        await conn.execute(
            "INSERT INTO issue_lists (issue_id, list_id) VALUES ($1, $2)", issue, news
        )
        await conn.execute(
            "INSERT INTO suppressions (address_key, email, reason, source, created_at)"
            " SELECT herald_address_key(e), CASE WHEN r = 'erased' THEN NULL ELSE e END, r, s,"
            "        now() - make_interval(hours => n)"
            " FROM (VALUES (1, 'grace@example.org', 'unsubscribed', 'one-click'),"
            "              (2, 'bounced.mailbox.with.a.long.name@example.com', 'hard_bounce',"
            "               'admin:admin'),"
            "              (3, 'angry@example.net', 'complaint', 'api:crm sync'),"
            "              (4, 'gone@example.org', 'erased', 'preferences'),"
            "              (5, 'blocked@example.org', 'manual', 'admin:admin'))"
            " AS x (n, e, r, s)"
        )
    return reader, issue


@pytest.mark.slow
async def test_privacy_pages_in_a_browser(database_url: str, db: Database, tmp_path: Path) -> None:
    playwright_api = require_browser()
    reader, issue = await seed(db)
    token = make_token(make_settings(database_url, secret_key=SECRET), reader)
    async with herald_up(
        database_url, tmp_path / "up.log", "herald-privacy-", HERALD_SECRET_KEY=SECRET
    ) as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            reader_context = await browser.new_context(base_url=herald.base_url)
            page = await camera_page(reader_context, camera)
            await reader_pages(page, camera, token, issue)
            admin_context = await browser.new_context(base_url=herald.base_url)
            admin = await camera_page(admin_context, camera)
            await sign_in(admin, "admin", herald.password)
            await admin_pages(admin, camera)
    camera.copy_for_a_human(HUMAN_COPY)
    problems = [p for p in camera.problems if not REFUSED.search(p)]
    assert problems == [], "\n".join(problems)
    assert camera.foreign_hosts() == set(), camera.requested


async def reader_pages(p: Any, camera: Camera, token: str, issue: uuid.UUID) -> None:
    response = await p.goto(f"/unsubscribe/one-click?token={token}&issue={issue}")
    assert response.status == 200
    assert "Stop sending Engine notes to" in re.sub(r"\s+", " ", await p.text_content("main"))
    await camera.shoot(p, "unsubscribe-one-list")

    response = await p.goto(f"/preferences?token={token}")
    assert response.status == 200
    assert response.headers["x-robots-tag"].startswith("noindex")
    await camera.shoot(p, "preferences")
    await p.check("#list-events")
    await p.uncheck("#list-insiders")
    await p.click("text=Save my preferences")
    await p.wait_for_url(f"**/preferences?token={token}")
    assert "Your preferences have been saved." in await p.text_content("main")
    assert await p.is_checked("#list-events")
    await camera.shoot(p, "preferences-saved")

    await p.click("text=Unsubscribe from all")
    await p.wait_for_url(f"**/preferences?token={token}")
    assert "unsubscribed from everything" in await p.text_content("main")
    await camera.shoot(p, "preferences-unsubscribed")

    async with p.expect_download() as download_info:
        await p.click("text=Download my data (JSON)")
    download = await download_info.value
    assert download.suggested_filename == "my-newsletter-data.json"

    await p.click("text=Erase me…")
    await p.wait_for_url("**/preferences/erase?token=*")
    await camera.shoot(p, "preferences-erase")
    await p.click("main button.danger")
    await p.wait_for_selector("text=Your data has been erased")
    await camera.shoot(p, "preferences-erased")

    response = await p.goto("/preferences?token=forged.link")
    assert response.status == 400
    await camera.shoot(p, "preferences-bad-link")


async def admin_pages(p: Any, camera: Camera) -> None:
    await p.goto("/admin/suppressions")
    main = re.sub(r"\s+", " ", await p.text_content("main"))
    assert "address erased" in main
    await camera.shoot(p, "suppressions")
    await p.fill("#email", "new.block@example.org")
    await p.click("text=Add to the suppression list")
    await p.wait_for_url("**/admin/suppressions")
    assert "new.block@example.org added to the suppression list." in await p.text_content("main")
    await camera.shoot(p, "suppressions-added")
    await p.fill("#q", "example.org")
    await p.press("#q", "Enter")
    await p.wait_for_url("**q=example.org**")
    await camera.shoot(p, "suppressions-search")
