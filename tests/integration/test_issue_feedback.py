"""What the providers reported about an issue (email_events, migration 0027) on the issue
page, the issue list, the dashboard and the API's stats: recipients per kind, rates over the
recipients sent to, and warnings above the published thresholds."""

from __future__ import annotations

import re
import uuid

import asyncpg
import httpx

from herald.core.config import Settings
from herald.core.db import Database
from tests.support.api import api_client, make_keys, new_app

SENT = 1_000


async def sent_issue(
    conn: asyncpg.Connection, title: str = "Reported"
) -> tuple[uuid.UUID, list[int]]:
    """A sent issue with ``SENT`` sent deliveries; their ids."""
    issue_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO newsletter_issues (id, title, html_content, text_content, status,"
        " published_at, recipients) VALUES ($1, $2, '<p>hi</p>', 'hi', 'sent', now(), $3)",
        issue_id,
        title,
        SENT,
    )
    ids = await conn.fetch(
        "INSERT INTO deliveries (kind, recipient, issue_id, max_attempts, status, sent_at)"
        " SELECT 'issue', 'r' || g || '@example.com', $1, 5, 'sent', now()"
        " FROM generate_series(1, $2) AS g RETURNING id",
        issue_id,
        SENT,
    )
    return issue_id, sorted(r["id"] for r in ids)


async def report(
    conn: asyncpg.Connection, issue_id: uuid.UUID, kind: str, delivery_ids: list[int]
) -> None:
    await conn.execute(
        "INSERT INTO email_events (provider, provider_event_id, kind, delivery_id, issue_id,"
        " occurred_at) SELECT 'postmark', $2 || ':' || d, $2, d, $1, now()"
        " FROM unnest($3::bigint[]) AS d",
        issue_id,
        kind,
        delivery_ids,
    )


async def reported_issue(db: Database) -> uuid.UUID:
    async with db.connection() as conn:
        issue_id, ids = await sent_issue(conn)
        await report(conn, issue_id, "delivered", ids[:900])
        await report(conn, issue_id, "hard_bounce", ids[900:925])  # 2.5 %: warn
        await report(conn, issue_id, "complaint", ids[:2])  # 0.2 %: warn
        # The same recipient complaining again (another event id) counts once.
        await conn.execute(
            "INSERT INTO email_events (provider, provider_event_id, kind, delivery_id,"
            " issue_id, occurred_at) VALUES ('ses', 'again', 'complaint', $2, $1, now())",
            issue_id,
            ids[0],
        )
        # Another issue's events stay out.
        other, other_ids = await sent_issue(conn, "Other")
        await report(conn, other, "hard_bounce", other_ids[:600])
    return issue_id


async def test_the_issue_page_shows_rates_and_warnings(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    issue_id = await reported_issue(db)
    page = (await admin_client.get(f"/admin/issues/{issue_id}")).text
    section = page[
        page.index('id="feedback"') : page.index("</section>", page.index('id="feedback"'))
    ]
    rows = dict(re.findall(r'data-kind="(\w+)".*?<td class="num">([\d,]+)</td>', section))
    assert rows == {"delivered": "900", "hard_bounce": "25", "complaint": "2"}
    assert 'class="rate rate-warn">2.5 %' in section
    assert 'class="rate rate-warn">0.20 %' in section
    assert "Spam complaints are at 0.20 % of recipients" in section
    assert "Hard bounces reached 2.5 % of recipients" in section


async def test_an_issue_without_reports_shows_no_section(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    async with db.connection() as conn:
        issue_id, _ = await sent_issue(conn)
    page = (await admin_client.get(f"/admin/issues/{issue_id}")).text
    assert 'id="feedback"' not in page


async def test_the_issue_list_and_the_dashboard_show_the_rates(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    issue_id = await reported_issue(db)
    listing = (await admin_client.get("/admin/issues")).text
    assert 'class="rate rate-alert" title="600 hard bounces">60 %' in listing
    assert 'class="rate rate-warn" title="25 hard bounces">2.5 %' in listing
    figures = (await admin_client.get("/admin/dashboard/figures")).json()
    mine = next(i for i in figures["issues"] if i["issue_id"] == str(issue_id))
    assert mine["hard_bounces"] == 25
    assert mine["complaints"] == 2
    assert mine["bounce_rate"] == 0.025
    assert mine["complaint_rate"] == 0.002
    dashboard = (await admin_client.get("/admin/dashboard")).text
    assert 'data-cell="bounce-rate"><span class="rate rate-warn"' in dashboard


async def test_the_api_stats_report_the_events(db: Database, settings: Settings) -> None:
    issue_id = await reported_issue(db)
    keys = await make_keys(db, settings)
    async with api_client(new_app(settings, db)) as client:
        response = await client.get(f"/api/v1/issues/{issue_id}/stats", headers=keys.editor_read)
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["reported"] == {"delivered": 900, "hard_bounce": 25, "complaint": 2}
    assert stats["bounce_rate"] == 0.025
    assert stats["complaint_rate"] == 0.002
