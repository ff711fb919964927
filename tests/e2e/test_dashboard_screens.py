"""The dashboard in Chromium (issue 11 item 2): its tiles follow a subscribe from another
client without a reload (the WebSocket, ``live.js``); screenshots at desktop and phone
widths in light and dark, for 30 and 365 days.

Screenshots go to a folder the test prints, with a copy in /tmp/herald-screens-dashboard.
The camera of tests/support/browser.py checks each page: no CSP violation, console error,
foreign host, or anything wider than a phone.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.core.db import Database
from tests.support.browser import (
    Camera,
    camera_page,
    chromium,
    herald_up,
    require_browser,
    sign_in,
)

HUMAN_COPY = Path("/tmp/herald-screens-dashboard")  # noqa: S108 - for a human to look at


async def seed(db: Database) -> None:
    """A year of subscribers (a few a day, some gone), and two sent issues with results."""
    rows = []
    for n in range(600):
        days_ago = (n * 7919) % 365 if n % 3 else (n * 13) % 40
        status = ("confirmed", "confirmed", "pending_confirmation", "unsubscribed")[n % 4]
        rows.append((uuid.uuid4(), f"reader{n}@example.org", f"Reader {n}", status, days_ago))
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO subscriptions (id, email, name, status, created_at, confirmed_at)"
            " VALUES ($1, $2, $3, $4, now() - make_interval(days => $5),"
            " CASE WHEN $4 <> 'pending_confirmation' THEN now() - make_interval(days => $5) END)",
            rows,
        )
        await conn.execute(  # today's unsubscribes
            "UPDATE subscriptions SET status = 'unsubscribed', unsubscribed_at = now()"
            " WHERE id IN (SELECT id FROM subscriptions WHERE status = 'confirmed' LIMIT 9)"
        )
        for title, failed in (("Weekly #1", 3), ("Weekly #2", 1)):
            issue = uuid.uuid4()
            await conn.execute(
                "INSERT INTO newsletter_issues (id, title, html_content, text_content, status,"
                " published_at, recipients) VALUES ($1, $2, '<p>hi</p>', 'hi', 'sent', now(), 300)",
                issue,
                title,
            )
            await conn.executemany(
                "INSERT INTO deliveries (kind, recipient, issue_id, status, attempts,"
                " max_attempts, last_error) VALUES ('issue', $1, $2, $3, 5, 5, $4)",
                [(f"x{n}@example.org", issue, "failed", "550 no such user") for n in range(failed)]
                + [(f"s{n}@example.org", issue, "suppressed", "unsubscribed") for n in range(2)],
            )


@pytest.mark.slow
async def test_the_dashboard_follows_a_subscribe_live(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    await seed(db)
    async with herald_up(database_url, tmp_path / "up.log", "herald-dashboard-screens-") as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            context = await browser.new_context(base_url=herald.base_url)
            page = await camera_page(context, camera)
            await sign_in(page, "admin", herald.password)
            await walk(page, camera, herald.base_url)

    camera.copy_for_a_human(HUMAN_COPY)
    assert camera.problems == [], "\n".join(camera.problems)
    assert camera.foreign_hosts() == set(), camera.requested


async def tile(page: Any, name: str) -> str:
    return (await page.text_content(f'[data-tile="{name}"]') or "").strip()


async def walk(page: Any, camera: Camera, base_url: str) -> None:
    await page.wait_for_selector("[data-live-state][data-state=live]")
    await page.wait_for_selector("#growth-chart .uplot")
    await page.wait_for_selector("#activity-chart .uplot")
    await camera.shoot(page, "dashboard")

    pending = int((await tile(page, "pending_confirmation")).replace(",", ""))
    signups = int((await tile(page, "today-subscribed")).replace(",", ""))
    await page.evaluate("window.__sameDocument = true")
    # Someone subscribes, from another client altogether.
    async with httpx.AsyncClient(base_url=base_url) as other:
        response = await other.post(
            "/subscriptions", data={"name": "Live Reader", "email": "live.reader@example.org"}
        )
        assert response.status_code < 400, response.text
    await page.wait_for_function(
        "([n]) => document.querySelector('[data-tile=pending_confirmation]').textContent"
        " === n.toLocaleString('en-US')",
        arg=[pending + 1],
    )
    assert int((await tile(page, "today-subscribed")).replace(",", "")) == signups + 1
    assert await page.evaluate("window.__sameDocument === true"), "the page was reloaded"

    # Its figures fragment agrees with what the tiles now show.
    figures = await (await page.request.get("/admin/dashboard/figures")).json()
    assert figures["counts"]["pending_confirmation"] == pending + 1

    await page.click("nav.tabs >> text=365 days")
    await page.wait_for_url("**days=365")
    await page.wait_for_selector("#growth-chart .uplot")
    await camera.shoot(page, "dashboard-365-days")
