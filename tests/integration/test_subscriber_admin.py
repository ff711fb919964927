"""The admin's subscriber pages: counts, keyset pages, search, actions, bulk, timeline."""

from __future__ import annotations

import asyncio
import html
import re
import uuid
from urllib.parse import urlencode

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.jobs.domain import JobStatus
from herald.subscriptions import bulk
from herald.subscriptions.bulk import Action
from herald.subscriptions.directory import SubscriberDirectory
from herald.subscriptions.domain import NewSubscriber, SubscriptionStatus
from herald.subscriptions.listing import ListFilter, Tab
from herald.subscriptions.service import SubscriptionService
from tests.support.newsletters import CSRF, add_subscribers

SHOWN = re.compile(r'<a href="/admin/subscribers/[0-9a-f-]{36}">([^<]+)</a>')


def flashes(page: httpx.Response) -> list[tuple[str, str]]:
    found = re.findall(r'<p class="(flash|error)" role="status">([^<]*)</p>', page.text)
    return [(level, html.unescape(text)) for level, text in found]


async def token(client: httpx.AsyncClient, url: str = "/admin/subscribers") -> str:
    page = await client.get(url)
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


async def post_pairs(client: httpx.AsyncClient, pairs: list[tuple[str, str]]) -> httpx.Response:
    """A form post with repeated fields (the selected ids)."""
    return await client.post(
        "/admin/subscribers/bulk",
        content=urlencode(pairs),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )


async def real_counts(db: Database) -> dict[SubscriptionStatus, int]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM subscriptions GROUP BY status")
    found = {SubscriptionStatus(r["status"]): r["n"] for r in rows}
    return {s: found.get(s, 0) for s in SubscriptionStatus}


async def test_counts_stay_right_under_concurrent_changes(db: Database, settings: Settings) -> None:
    service = SubscriptionService(db, settings)
    directory = SubscriberDirectory(db, settings)
    existing = await add_subscribers(db, 40)
    assert await directory.counts() == await real_counts(db)

    async def subscribe(n: int) -> None:
        new = NewSubscriber.parse(name=f"New {n}", email=f"new{n}@example.com")
        await service.subscribe(new)

    async def confirm_half() -> None:
        async with db.connection() as conn:
            ids = await conn.fetch(
                "SELECT id FROM subscriptions WHERE status = 'pending_confirmation'"
            )
            for row in ids[::2]:
                await conn.execute(
                    "UPDATE subscriptions SET status = 'confirmed' WHERE id = $1", row["id"]
                )

    await asyncio.gather(
        *(subscribe(n) for n in range(30)),
        *(directory.act(Action.UNSUBSCRIBE, [i]) for i in existing[:10]),
        *(directory.act(Action.DELETE, [i]) for i in existing[10:20]),
        directory.act(Action.UNSUBSCRIBE, existing[20:30]),
        directory.act(Action.DELETE, existing[25:35]),  # overlaps: some already unsubscribed
        confirm_half(),
        *(subscribe(n) for n in range(30, 40)),
    )
    assert await directory.counts() == await real_counts(db)
    counts = await directory.counts()
    assert sum(counts.values()) == 40 - 20 + 40  # 20 deleted, 40 new


async def test_keyset_pages_neither_repeat_nor_skip_while_rows_arrive(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 130)  # one statement: all share created_at, the id breaks ties
    await add_subscribers(db, 45, prefix="later")
    directory = SubscriberDirectory(db, settings)
    for sort in ("newest", "oldest"):
        where = ListFilter.parse(sort=sort)
        seen: list[str] = []
        after = ""
        for round_ in range(10):
            page = await directory.page(where, after=after)
            seen += [s.email for s in page.subscribers]
            await add_subscribers(db, 3, prefix=f"{sort}{round_}x")  # arrive meanwhile
            if page.older is None:
                break
            after = str(page.older)
        assert len(seen) == len(set(seen)), "a subscriber on two pages"
        original = {f"reader{n}@example.com" for n in range(130)} | {
            f"later{n}@example.com" for n in range(45)
        }
        assert original <= set(seen), "a subscriber skipped"
    # The "newer" link goes back to exactly the previous page.
    where = ListFilter()
    first = await directory.page(where)
    second = await directory.page(where, after=str(first.older))
    back = await directory.page(where, before=str(second.newer))
    assert [s.id for s in back.subscribers] == [s.id for s in first.subscribers]


async def test_search_by_email_or_name_prefix_and_substring(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    await add_subscribers(db, 12)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status) VALUES"
            " ($1, 'ada@lovelace.example', 'Ada Byron', 'confirmed'),"
            " ($2, 'x_50%@odd.example', 'Zoë Ünder', 'pending_confirmation')",
            uuid.uuid4(),
            uuid.uuid4(),
        )

    async def shown(**params: str) -> list[str]:
        page = await admin_client.get("/admin/subscribers", params=params)
        assert page.status_code == 200, page.text
        return sorted(SHOWN.findall(page.text))

    assert await shown(q="LOVELACE") == ["ada@lovelace.example"]  # email substring, any case
    assert await shown(q="byro") == ["ada@lovelace.example"]  # name substring
    # Non-ASCII: case-insensitive only where the database's locale lowers it (not in "C").
    assert await shown(q="Ünd") == ["x_50%@odd.example"]
    assert await shown(q="_50%") == ["x_50%@odd.example"]  # % and _ are plain characters
    assert await shown(q="reader1", match="prefix") == sorted(
        ["reader1@example.com", "reader10@example.com", "reader11@example.com"]
    )
    assert await shown(q="x_", match="prefix") == ["x_50%@odd.example"]
    assert await shown(q="ead", match="prefix") == []  # "starts with" is a prefix only
    assert await shown(q="zo") == ["x_50%@odd.example"]  # two characters: a name prefix
    assert await shown(q="ada", status="pending_confirmation") == []
    assert await shown(q="ada", status="confirmed") == ["ada@lovelace.example"]
    bad = await admin_client.get("/admin/subscribers", params={"status": "nope"})
    assert bad.status_code == 400
    cursor = await admin_client.get("/admin/subscribers", params={"after": "garbage"})
    assert cursor.status_code == 400


async def test_tabs_show_counts(admin_client: httpx.AsyncClient, db: Database) -> None:
    await add_subscribers(db, 3)
    await add_subscribers(db, 2, status="pending_confirmation", prefix="p")
    await add_subscribers(db, 1, status="unsubscribed", prefix="u")
    page = await admin_client.get("/admin/subscribers?status=pending_confirmation")
    tabs = re.findall(
        r'<a href="[^"]*"( aria-current="page")?>(\w+) <span class="count">([\d,]+)</span>',
        page.text,
    )
    assert [(label, n, bool(cur)) for cur, label, n in tabs] == [
        ("All", "6", False),
        ("Confirmed", "3", False),
        ("Pending", "2", True),
        ("Unsubscribed", "1", False),
    ]
    assert sorted(SHOWN.findall(page.text)) == ["p0@example.com", "p1@example.com"]


async def test_actions_on_one_subscriber(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [pending] = await add_subscribers(db, 1, status="pending_confirmation", prefix="p")
    [reader] = await add_subscribers(db, 1)
    url = f"/admin/subscribers/{pending}"
    limit = settings.subscriptions.max_confirmations_per_day
    for _ in range(limit):
        done = await admin_client.post(
            f"{url}/resend-confirmation", data={"csrf_token": await token(admin_client, url)}
        )
        assert done.status_code == 303
    page = await admin_client.get(url)
    assert flashes(page) == [("flash", "Confirmation email sent to 1 subscriber.")]
    refused = await admin_client.post(
        f"{url}/resend-confirmation", data={"csrf_token": await token(admin_client, url)}
    )
    page = await admin_client.get(refused.headers["location"])
    assert "limit of confirmation emails" in flashes(page)[0][1]
    async with db.connection() as conn:
        sent = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE subscriber_id = $1 AND kind = 'confirmation'",
            pending,
        )
    assert sent == limit  # the daily limit holds
    assert page.text.count('<tr class="event-confirmation">') == limit  # on the timeline

    # No CSRF token: 403 and nothing changes.
    forged = await admin_client.post(f"/admin/subscribers/{reader}/unsubscribe", data={})
    assert forged.status_code == 403
    assert (await real_counts(db))[SubscriptionStatus.CONFIRMED] == 1

    url = f"/admin/subscribers/{reader}"
    await admin_client.post(
        f"{url}/unsubscribe", data={"csrf_token": await token(admin_client, url)}
    )
    page = await admin_client.get(url)
    assert flashes(page) == [("flash", "1 subscriber unsubscribed.")]
    assert '<tr class="event-unsubscribed">' in page.text

    confirm = await admin_client.get(f"{url}/delete")
    assert confirm.status_code == 200
    assert "Delete reader0@example.com?" in confirm.text
    gone = await admin_client.post(
        f"{url}/delete", data={"csrf_token": await token(admin_client, url)}
    )
    assert gone.headers["location"] == "/admin/subscribers"
    assert (await admin_client.get(url)).status_code == 404


async def test_delete_keeps_the_delivery_history(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    [reader] = await add_subscribers(db, 1)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, status, max_attempts)"
            " VALUES ('confirmation', 'reader0@example.com', $1, 'sent', 5),"
            "        ('confirmation', 'reader0@example.com', $1, 'queued', 5)",
            reader,
        )
    url = f"/admin/subscribers/{reader}"
    await admin_client.post(f"{url}/delete", data={"csrf_token": await token(admin_client, url)})
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT subscriber_id, status FROM deliveries ORDER BY id")
    assert [(r["subscriber_id"], r["status"]) for r in rows] == [
        (None, "sent"),
        (None, "suppressed"),
    ]


async def test_bulk_actions_on_a_selection_and_on_a_whole_filter(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    ids = await add_subscribers(db, 8)
    await add_subscribers(db, 5, prefix="gone")
    csrf = await token(admin_client)
    selection = [("csrf_token", csrf), ("action", "unsubscribe"), ("scope", "selected")]
    selection += [("id", str(i)) for i in ids[:3]]
    done = await post_pairs(admin_client, selection)
    page = await admin_client.get(done.headers["location"])
    assert flashes(page) == [("flash", "3 subscribers unsubscribed.")]

    # Deleting asks first, and a forged post does nothing.
    ask = [("csrf_token", csrf), ("action", "delete"), ("scope", "filter"), ("q", "gone")]
    confirm = await post_pairs(admin_client, ask)
    assert confirm.status_code == 200
    assert "everyone matching “gone”" in html.unescape(confirm.text)
    assert (await real_counts(db))[SubscriptionStatus.CONFIRMED] == 10
    forged = await post_pairs(admin_client, [*ask[1:], ("confirm", "yes")])
    assert forged.status_code == 403
    assert sum((await real_counts(db)).values()) == 13
    done = await post_pairs(admin_client, [*ask, ("confirm", "yes")])
    assert done.headers["location"] == "/admin/subscribers?q=gone"
    page = await admin_client.get(done.headers["location"])
    assert flashes(page) == [("flash", "5 subscribers deleted.")]
    assert sum((await real_counts(db)).values()) == 8

    empty = await admin_client.post(
        "/admin/subscribers/bulk",
        data={"csrf_token": csrf, "action": "delete", "scope": "selected"},
    )
    page = await admin_client.get(empty.headers["location"])
    assert flashes(page) == [("error", "Select at least one subscriber first.")]


async def test_a_bulk_action_over_a_filter_walks_every_batch(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bulk, "BATCH_SIZE", 7)
    await add_subscribers(db, 30)
    await add_subscribers(db, 4, status="pending_confirmation", prefix="p")
    job = await SubscriberDirectory(db, settings).act_on_filter(
        Action.UNSUBSCRIBE, ListFilter(Tab.CONFIRMED), budget_seconds=None
    )
    assert (job.status, job.done, job.skipped, job.total) == (JobStatus.DONE, 30, 0, 30)
    assert job.message == "30 subscribers unsubscribed."
    assert await real_counts(db) == {
        SubscriptionStatus.CONFIRMED: 0,
        SubscriptionStatus.PENDING: 4,
        SubscriptionStatus.UNSUBSCRIBED: 30,
    }


async def test_the_timeline_pages_through_many_deliveries(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    [reader] = await add_subscribers(db, 1)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, status, max_attempts,"
            " created_at, last_error)"
            " SELECT 'confirmation', 'reader0@example.com', $1, 'failed', 5,"
            " now() - make_interval(mins => g), 'mailbox full ' || g"
            " FROM generate_series(1, 150) AS g",
            reader,
        )
        await conn.execute(
            "UPDATE subscriptions SET created_at = now() - interval '1 day' WHERE id = $1", reader
        )
    first = await admin_client.get(f"/admin/subscribers/{reader}")
    assert first.text.count('<tr class="event-confirmation">') == 100
    assert "mailbox full 1<" in first.text
    assert '<tr class="event-subscribed">' not in first.text  # older than this page
    older = re.search(r'rel="next" href="([^"]+)"', first.text)
    assert older
    second = await admin_client.get(html.unescape(older.group(1)))
    assert second.text.count('<tr class="event-confirmation">') == 50
    assert "mailbox full 150<" in second.text
    assert '<tr class="event-subscribed">' in second.text
    assert 'rel="next"' not in second.text


async def test_the_timeline_shows_what_providers_reported_in_each_page(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    """Reports (email_events) sit among the deliveries of the page whose span holds them:
    each on exactly one page, the newest page open-ended upwards, the last one downwards."""
    [reader] = await add_subscribers(db, 1)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, status, max_attempts,"
            " created_at) SELECT 'confirmation', 'reader0@example.com', $1, 'sent', 5,"
            " now() - make_interval(mins => g) FROM generate_series(1, 150) AS g",
            reader,
        )
        # Minutes ago: 0 (newer than every delivery), 10 (page 1), 120 (page 2),
        # 1000 (older than every delivery: the last page).
        await conn.execute(
            "INSERT INTO email_events (provider, provider_event_id, kind, subscriber_id,"
            " occurred_at, detail, suppressed)"
            " SELECT 'postmark', 'e' || m, k, $1, now() - make_interval(mins => m),"
            " 'detail ' || m, k = 'hard_bounce'"
            " FROM (VALUES (0, 'delivered'), (10, 'soft_bounce'), (120, 'complaint'),"
            " (1000, 'hard_bounce')) AS v (m, k)",
            reader,
        )
        await conn.execute(
            "UPDATE subscriptions SET created_at = now() - interval '1 day' WHERE id = $1", reader
        )
    first = (await admin_client.get(f"/admin/subscribers/{reader}")).text
    older = re.search(r'rel="next" href="([^"]+)"', first)
    assert older
    second = (await admin_client.get(html.unescape(older.group(1)))).text
    found = {
        page: re.findall(r'<tr class="event-report">.*?status-report-(\w+)', text, re.S)
        for page, text in (("first", first), ("second", second))
    }
    assert found == {"first": ["delivered", "soft_bounce"], "second": ["complaint", "hard_bounce"]}
    assert "detail 10<" in first
    assert "Postmark reported" in first
    assert "address suppressed" in second
    assert "address suppressed" not in first
