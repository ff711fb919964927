"""What providers reported, in Chromium: the issue page's table and warnings, the issue
list's and the dashboard's rate columns, a subscriber's timeline with bounces and a
complaint — at desktop and phone widths (the camera checks CSP, console errors, foreign
hosts and horizontal overflow at phone width).

Screenshots go to a folder the test prints, with a copy in /tmp/herald-screens-feedback.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from herald.core.db import Database
from tests.support.browser import Camera, camera_page, chromium, herald_up, require_browser, sign_in

HUMAN_COPY = Path("/tmp/herald-screens-feedback")  # noqa: S108 - for a human to look at


async def seed(db: Database) -> tuple[uuid.UUID, uuid.UUID]:
    """Two sent issues (one healthy, one with many bounces and complaints) and a reader
    whose timeline holds reports; the bad issue's id and the reader's."""
    reader = uuid.uuid4()
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status, created_at, confirmed_at)"
            " VALUES ($1, 'ana@example.org', 'Ana Reader', 'unsubscribed',"
            " now() - interval '3 days', now() - interval '3 days')",
            reader,
        )
        bad = uuid.uuid4()
        for issue, title, bounces, complaints in (
            (uuid.uuid4(), "Weekly #1: all good", 3, 0),
            (bad, "Weekly #2: the imported list", 130, 4),
        ):
            await conn.execute(
                "INSERT INTO newsletter_issues (id, title, html_content, text_content, status,"
                " published_at, recipients) VALUES ($1, $2, '<p>hi</p>', 'hi', 'sent',"
                " now() - interval '1 day', 2000)",
                issue,
                title,
            )
            ids = [
                r["id"]
                for r in await conn.fetch(
                    "INSERT INTO deliveries (kind, recipient, issue_id, status, max_attempts,"
                    " sent_at, subscriber_id) SELECT 'issue', 'r' || g || '@example.org', $1,"
                    " 'sent', 5, now(), CASE WHEN g = 1 THEN $2::uuid END"
                    " FROM generate_series(1, 2000) AS g RETURNING id",
                    issue,
                    reader,
                )
            ]
            events = [("delivered", d, "") for d in ids[bounces + 12 :]]
            events += [
                ("hard_bounce", d, "550 5.1.1 The email account does not exist")
                for d in ids[1 : bounces + 1]
            ]
            events += [
                ("soft_bounce", d, "452 4.2.2 Mailbox full")
                for d in ids[bounces + 1 : bounces + 12]
            ]
            events += [("complaint", d, "") for d in ids[1 : complaints + 1]]
            await conn.executemany(
                "INSERT INTO email_events (provider, provider_event_id, kind, delivery_id,"
                " issue_id, occurred_at, detail) VALUES ('postmark', $1, $2, $3, $4, now(), $5)",
                [(f"{issue}:{k}:{d}", k, d, issue, detail) for k, d, detail in events],
            )
            await conn.executemany(
                "INSERT INTO email_events (provider, provider_event_id, kind, subscriber_id,"
                " issue_id, occurred_at, detail, suppressed) VALUES ($1, $2, $3, $4, $5,"
                " now() - make_interval(mins => $6), $7, $8)",
                [
                    ("postmark", f"{issue}:r1", "delivered", reader, issue, 50, "", False),
                    (
                        "ses",
                        f"{issue}:r2",
                        "soft_bounce",
                        reader,
                        issue,
                        40,
                        "452 4.2.2 Mailbox full",
                        False,
                    ),
                    (
                        "postmark",
                        f"{issue}:r3",
                        "complaint",
                        reader,
                        issue,
                        30,
                        "Marked as spam in Gmail",
                        issue == bad,
                    ),
                ],
            )
    return bad, reader


@pytest.mark.slow
async def test_reports_on_the_issue_list_dashboard_and_timeline(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    playwright_api = require_browser()
    bad, reader = await seed(db)
    async with herald_up(database_url, tmp_path / "up.log", "herald-feedback-screens-") as herald:
        camera = Camera(tmp_path / "screens", herald.port)
        async with chromium(playwright_api) as browser:
            context = await browser.new_context(base_url=herald.base_url)
            page = await camera_page(context, camera)
            await sign_in(page, "admin", herald.password)
            await page.goto(f"/admin/issues/{bad}")
            assert "Hard bounces reached 6.5 % of recipients" in await page.content()
            await camera.shoot(page, "issue-feedback")
            await page.goto("/admin/issues")
            await camera.shoot(page, "issue-list-rates")
            await page.goto("/admin/dashboard")
            await camera.shoot(page, "dashboard-rates")
            await page.goto(f"/admin/subscribers/{reader}")
            assert "address suppressed" in await page.content()
            await camera.shoot(page, "timeline-reports")

    camera.copy_for_a_human(HUMAN_COPY)
    assert camera.problems == [], "\n".join(camera.problems)
    assert camera.foreign_hosts() == set(), camera.requested
