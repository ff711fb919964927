"""The subscriber pages in Chromium (issue 11 item 4): list, tabs, search, timeline,
delete confirmation, a bulk action, at desktop and phone widths in light and dark.

Screenshots go to a folder the test prints, with a copy in /tmp/herald-screens-subscribers.
The camera of tests/support/browser.py checks each page: no CSP violation, console error,
foreign host, or anything wider than a phone.
"""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from pathlib import Path
from typing import Any

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

HUMAN_COPY = Path("/tmp/herald-screens-subscribers")  # noqa: S108 - for a human to look at
NAMES = ["Ada Lovelace", "Grace Hopper", "Alan Turing", "Zoë Ünder", "Edsger Dijkstra"]


async def seed(db: Database) -> uuid.UUID:
    """Subscribers of every status; the first one has a history of deliveries."""
    rows = []
    for n in range(75):
        name = NAMES[n % len(NAMES)]
        status = ("confirmed", "pending_confirmation", "unsubscribed", "confirmed")[n % 4]
        email = f"{name.split()[0].lower().replace('ë', 'e')}.{n}@example.org"
        rows.append((uuid.uuid4(), email, f"{name} {n}", status))
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO subscriptions (id, email, name, status, created_at, confirmed_at,"
            " unsubscribed_at) VALUES ($1, $2, $3, $4,"
            " now() - make_interval(hours => $5),"
            " CASE WHEN $4 <> 'pending_confirmation'"
            "      THEN now() - make_interval(hours => $5 - 1) END,"
            " CASE WHEN $4 = 'unsubscribed' THEN now() - make_interval(mins => $5) END)",
            [(*row, n + 2) for n, row in enumerate(rows)],
        )
        first = rows[0][0]
        issues = [(uuid.uuid4(), f"Weekly #{n}") for n in range(1, 5)]
        await conn.executemany(
            "INSERT INTO newsletter_issues (id, title, html_content, text_content, status,"
            " published_at) VALUES ($1, $2, '<p>hi</p>', 'hi', 'sent', now())",
            issues,
        )
        await conn.execute(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, status, attempts,"
            " max_attempts, created_at, sent_at, message)"
            " VALUES ('confirmation', $2, $1, 'sent', 1, 5,"
            " now() - interval '2 hours', now() - interval '2 hours', '{}')",
            first,
            rows[0][1],
        )
        await conn.executemany(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, issue_id, status, attempts,"
            " max_attempts, last_error, sent_at) VALUES ('issue', $2, $1, $3, $4, $5, 5, $6,"
            " CASE WHEN $4 = 'sent' THEN now() END)",
            [
                (first, rows[0][1], issues[0][0], "sent", 1, None),
                (first, rows[0][1], issues[1][0], "failed", 5, "550 mailbox unavailable"),
                (first, rows[0][1], issues[2][0], "sent", 2, None),
                (first, rows[0][1], issues[3][0], "queued", 0, None),
            ],
        )
    return first


@pytest.mark.slow
async def test_subscriber_pages_in_a_browser(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    first = await seed(db)
    async with herald_up(database_url, tmp_path / "up.log", "herald-subscriber-screens-") as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            context = await browser.new_context(base_url=herald.base_url)
            page = await camera_page(context, camera)
            await sign_in(page, "admin", herald.password)
            await walk(page, camera, first)
            await background_jobs(page, camera, db)

    camera.copy_for_a_human(HUMAN_COPY)
    assert camera.problems == [], "\n".join(camera.problems)
    assert camera.foreign_hosts() == set(), camera.requested


async def walk(p: Any, camera: Camera, first: uuid.UUID) -> None:
    await p.goto("/admin/subscribers")
    assert "All 75" in re.sub(r"\s+", " ", await p.text_content("nav.tabs"))
    await camera.shoot(p, "subscribers")
    await p.click("a[rel=next]")
    await camera.shoot(p, "subscribers-page-2")
    await p.click("nav.tabs >> text=Pending")
    await camera.shoot(p, "subscribers-tab-pending")

    # Search: type, submit (no script needed).
    await p.goto("/admin/subscribers")
    await p.fill("#q", "hopper")
    await p.press("#q", "Enter")
    await p.wait_for_url("**q=hopper**")
    shown = await p.locator("table.subscribers tbody tr").count()
    assert shown == 15
    await camera.shoot(p, "subscribers-search")

    # The timeline of the subscriber with deliveries.
    await p.goto(f"/admin/subscribers/{first}")
    timeline = await p.text_content("table.timeline")
    assert "550 mailbox unavailable" in timeline
    assert "Weekly #4" in timeline
    await camera.shoot(p, "subscriber-timeline")

    # Delete, with its confirmation page.
    await p.click("text=Delete…")
    await p.wait_for_url(re.compile(r".*/delete$"))
    await camera.shoot(p, "subscriber-delete-confirm")
    await p.click("button.danger")
    await p.wait_for_url(re.compile(r".*/admin/subscribers$"))
    assert "1 subscriber deleted." in await p.text_content("main")
    await camera.shoot(p, "subscribers-after-delete")

    # A bulk action on a selection: tick two, unsubscribe.
    await p.goto("/admin/subscribers?status=confirmed")
    boxes = p.locator("table.subscribers input[type=checkbox]")
    await boxes.nth(0).check()
    await boxes.nth(1).check()
    await p.select_option("select[name=action]", "unsubscribe")
    await p.click("form.bulk button[type=submit]")
    await p.wait_for_url("**status=confirmed")
    assert "2 subscribers unsubscribed." in await p.text_content("main")

    # Everyone matching a filter asks first.
    await p.select_option("select[name=scope]", "filter")
    await p.select_option("select[name=action]", "delete")
    await p.click("form.bulk button[type=submit]")
    await p.wait_for_selector("text=Cancel")
    await camera.shoot(p, "subscribers-bulk-confirm")
    await p.click("main form button.danger")
    await p.wait_for_url("**status=confirmed")
    main = re.sub(r"\s+", " ", await p.text_content("main"))
    assert "subscribers deleted." in main
    await camera.shoot(p, "subscribers-after-bulk-delete")


async def background_jobs(p: Any, camera: Camera, db: Database) -> None:
    """A big bulk action in progress (held by a live lease, so no worker takes it): its
    block with a progress bar and Stop button, moved live by a job.progress event."""
    job_id = uuid.uuid4()
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO jobs (id, kind, params, description, status, done, skipped, total,"
            " lease_token, leased_until, attempts)"
            " VALUES ($1, 'subscribers.bulk', '{}', 'Unsubscribing everyone confirmed',"
            " 'running', 312000, 1500, 1000000, gen_random_uuid(), now() + interval '1 hour', 1)",
            job_id,
        )
    await p.goto("/admin/subscribers")
    state = p.locator(f'[data-job-id="{job_id}"] [data-job-state]')
    assert re.sub(r"\s+", " ", await state.text_content()).strip() == "313,500 of 1,000,000 done"
    await camera.shoot(p, "subscribers-job-running")
    event = json.dumps(
        {
            "type": "job.progress",
            "job_id": str(job_id),
            "status": "running",
            "done": 640000,
            "skipped": 2000,
            "total": 1000000,
            "message": None,
        }
    )
    for _ in range(50):  # until the page's socket is up and has the event
        async with db.connection() as conn:
            await conn.execute("SELECT pg_notify('herald_live', $1)", event)
        if (await state.text_content() or "").strip() == "642,000 of 1,000,000 done":
            break
        await asyncio.sleep(0.2)
    assert (await state.text_content() or "").strip() == "642,000 of 1,000,000 done"
    assert await p.locator(f'[data-job-id="{job_id}"] progress').get_attribute("value") == "642000"
    # Events dropped (a burst, a reconnect): after a resync the block shows the job as it is.
    async with db.connection() as conn:
        await conn.execute("UPDATE jobs SET done = 700000 WHERE id = $1", job_id)
    await p.evaluate(
        "document.dispatchEvent(new CustomEvent('herald:live', {detail: {type: 'resync'}}))"
    )
    await p.wait_for_function(
        'id => (document.querySelector(`[data-job-id="${id}"] [data-job-state]`) || {})'
        ".textContent?.trim() === '701,500 of 1,000,000 done'",
        arg=str(job_id),
    )
    await p.click(f'[data-job-id="{job_id}"] button:has-text("Stop")')
    await p.wait_for_url(re.compile(r".*/admin/subscribers$"))
    assert "Stopped: 700,000 done before it was stopped." in await p.text_content("main")
    await camera.shoot(p, "subscribers-job-stopped")
