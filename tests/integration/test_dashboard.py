"""The dashboard: per-day counters kept by triggers (migration 0011), UTC days, the
page and its JSON figures."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.subscriptions import audience, repository
from herald.subscriptions.audience import AudienceStats
from herald.subscriptions.bulk import Action
from herald.subscriptions.directory import SubscriberDirectory
from herald.subscriptions.domain import NewSubscriber, SubscriptionStatus
from herald.subscriptions.service import SubscriptionService
from tests.support.newsletters import add_subscribers

FIELDS = ("subscribed", "confirmed", "unsubscribed", "deleted", "confirmed_net", "pending_net")


def utc_today() -> date:
    return datetime.now(UTC).date()


async def day_figures(db: Database, day: date) -> dict[str, int]:
    async with db.connection() as conn:
        rows = await repository.daily_figures(conn, day - timedelta(days=1))
    found = [r for r in rows if r.day == day]
    return {f: getattr(found[0], f) if found else 0 for f in FIELDS}


async def confirm(db: Database, ids: list[uuid.UUID]) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE subscriptions SET status = 'confirmed', confirmed_at = now() "
            "WHERE id = ANY($1::uuid[]) AND status = 'pending_confirmation'",
            ids,
        )


async def test_each_change_is_counted_on_its_utc_day(db: Database, settings: Settings) -> None:
    service = SubscriptionService(db, settings)
    directory = SubscriberDirectory(db, settings)
    today = utc_today()
    for n in range(3):
        await service.subscribe(NewSubscriber.parse(name=f"New {n}", email=f"new{n}@example.com"))
    assert await day_figures(db, today) == {
        "subscribed": 3, "confirmed": 0, "unsubscribed": 0, "deleted": 0,
        "confirmed_net": 0, "pending_net": 3,
    }  # fmt: skip
    async with db.connection() as conn:
        ids = [r["id"] for r in await conn.fetch("SELECT id FROM subscriptions ORDER BY email")]
    await confirm(db, ids[:2])
    await confirm(db, ids[:2])  # nothing changes the second time
    await directory.act(Action.UNSUBSCRIBE, [ids[0]])
    await directory.act(Action.UNSUBSCRIBE, [ids[0]])  # already unsubscribed
    await directory.act(Action.DELETE, [ids[1], ids[2]])
    assert await day_figures(db, today) == {
        "subscribed": 3, "confirmed": 2, "unsubscribed": 1, "deleted": 2,
        "confirmed_net": 0, "pending_net": 0,
    }  # fmt: skip
    # Subscribing again after unsubscribing is a sign-up again.
    await service.subscribe(NewSubscriber.parse(name="New 0", email="new0@example.com"))
    figures = await day_figures(db, today)
    assert (figures["subscribed"], figures["pending_net"]) == (4, 1)

    audience = await AudienceStats(db, settings).audience(30)
    assert audience.counts == {
        SubscriptionStatus.PENDING: 1,
        SubscriptionStatus.CONFIRMED: 0,
        SubscriptionStatus.UNSUBSCRIBED: 0,
    }
    assert len(audience.days) == 30
    assert audience.days[-1].day == today
    assert (audience.days[-1].subscribed, audience.days[-1].pending_total) == (4, 1)
    assert audience.days[0].pending_total == 0
    assert audience.before == (0, 0)


async def test_days_are_utc_whatever_the_session_time_zone(db: Database) -> None:
    """22:00 in Los Angeles on 1 March is 06:00 UTC on 2 March: counted on 2 March."""
    async with db.connection() as conn, conn.transaction():
        await conn.execute("SET LOCAL TIME ZONE 'America/Los_Angeles'")
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status, created_at, confirmed_at) "
            "VALUES ($1, 'la@example.com', 'LA', 'confirmed', "
            "'2026-03-01 22:00:00-08', '2026-03-01 22:05:00-08')",
            uuid.uuid4(),
        )
    assert (await day_figures(db, date(2026, 3, 1)))["subscribed"] == 0
    assert (await day_figures(db, date(2026, 3, 2)))["subscribed"] == 1
    assert (await day_figures(db, date(2026, 3, 2)))["confirmed_net"] == 1


async def test_growth_walks_back_from_todays_counts(db: Database, settings: Settings) -> None:
    today = utc_today()
    async with db.connection() as conn:
        for back, n in ((40, 5), (10, 3), (2, 2)):
            at = datetime.now(UTC) - timedelta(days=back)
            await conn.executemany(
                "INSERT INTO subscriptions (id, email, name, status, created_at, confirmed_at) "
                "VALUES ($1, $2, 'R', 'confirmed', $3, $3)",
                [(uuid.uuid4(), f"r{back}-{i}@example.com", at) for i in range(n)],
            )
    audience = await AudienceStats(db, settings).audience(30)
    assert audience.counts[SubscriptionStatus.CONFIRMED] == 10
    assert audience.before == (5, 0)
    assert audience.confirmed_growth == 5
    by_day = {d.day: d for d in audience.days}
    assert by_day[today - timedelta(days=11)].confirmed_total == 5
    assert by_day[today - timedelta(days=10)].confirmed_total == 8
    assert by_day[today - timedelta(days=10)].confirmed == 3
    assert by_day[today].confirmed_total == 10
    assert (await AudienceStats(db, settings).audience(90)).before == (0, 0)


async def test_the_dashboard_shows_the_figures(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    await add_subscribers(db, 7)
    await add_subscribers(db, 2, status="pending_confirmation", prefix="p")
    page = await admin_client.get("/admin/dashboard")
    assert page.status_code == 200
    text = page.text
    assert "Welcome admin" in text
    assert 'data-tile="confirmed">7<' in text
    assert 'data-tile="pending_confirmation">2<' in text
    assert "Days are UTC" in text
    assert "Day (UTC)" in text
    assert '<script src="/static/live.js"' in text
    assert "/static/vendor/uplot/uPlot.iife.min.js" in text
    embedded = re.search(r'id="dashboard-figures"[^>]*>(.*?)</script>', text, re.S)
    assert embedded
    assert json.loads(embedded.group(1))["counts"]["confirmed"] == 7
    for days in ("90", "365"):
        assert (await admin_client.get(f"/admin/dashboard?days={days}")).status_code == 200


async def test_the_figures_fragment(admin_client: httpx.AsyncClient, db: Database) -> None:
    await add_subscribers(db, 3)
    response = await admin_client.get("/admin/dashboard/figures?days=90")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    figures = response.json()
    assert figures["period"] == 90
    assert len(figures["days"]["day"]) == 90
    assert figures["counts"] == {"pending_confirmation": 0, "confirmed": 3, "unsubscribed": 0}
    assert figures["days"]["subscribed"][-1] == 3
    assert figures["totals"]["subscribed"] == 3
    assert figures["queue"] == {
        "queued": 0,
        "sending": 0,
        "oldest_ready_seconds": 0.0,
        "capped": False,
    }
    assert figures["issues"] == []


async def test_bad_periods_are_a_400_and_strangers_are_sent_to_login(
    admin_client: httpx.AsyncClient, client: httpx.AsyncClient
) -> None:
    for bad in ("7", "abc", "-30", "30.0"):
        assert (await admin_client.get(f"/admin/dashboard?days={bad}")).status_code == 400
        assert (await admin_client.get(f"/admin/dashboard/figures?days={bad}")).status_code == 400
    admin_client.cookies.clear()
    response = await admin_client.get("/admin/dashboard/figures")
    assert (response.status_code, response.headers["location"]) == (303, "/login")


async def test_the_queue_tile_and_the_last_issues(
    admin_client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Queued rows are counted up to a cap ("N+" beyond); an issue shows its results."""
    monkeypatch.setattr(audience, "QUEUE_COUNT_CAP", 5)
    issue = uuid.uuid4()
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO newsletter_issues (id, title, html_content, text_content, status,"
            " published_at, recipients) VALUES ($1, 'Weekly', '<p>hi</p>', 'hi', 'sent',"
            " now(), 10)",
            issue,
        )
        await conn.executemany(
            "INSERT INTO deliveries (kind, recipient, issue_id, status, attempts, max_attempts,"
            " available_at) VALUES ('issue', $1, $2, $3, 1, 5, now() - interval '1 minute')",
            [(f"q{n}@example.com", issue, "queued") for n in range(4)]
            + [("f@example.com", issue, "failed"), ("s@example.com", issue, "suppressed")],
        )
    figures = (await admin_client.get("/admin/dashboard/figures")).json()
    assert figures["queue"]["queued"] == 4
    assert figures["queue"]["capped"] is False
    assert figures["queue"]["oldest_ready_seconds"] >= 60
    [shown] = figures["issues"]
    assert shown == {
        "issue_id": str(issue),
        "status": "sent",
        "recipients": 10,
        "sent": 4,
        "failed": 1,
        "suppressed": 1,
        "hard_bounces": 0,
        "complaints": 0,
        "bounce_rate": 0.0,
        "complaint_rate": 0.0,
    }
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO deliveries (kind, recipient, issue_id, status, attempts, max_attempts)"
            " VALUES ('issue', 'q9@example.com', $1, 'queued', 0, 5)",
            issue,
        )
    page = await admin_client.get("/admin/dashboard")
    assert 'data-tile="queued">5+<' in page.text
    assert 'data-cell="failed"><a href="/admin/issues/' in page.text
