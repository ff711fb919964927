"""The unsubscribe link per list (RFC 8058 one-click): ``&issue=`` leaves that issue's
lists only; without it (or with a garbled or unknown one) the reader leaves everything
and is suppressed as ``unsubscribed``. Always 200, idempotent, never a redirect."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.subscriptions import repository
from herald.subscriptions.unsubscribe import make_token, preferences_url_of, unsubscribe_url
from tests.support.newsletters import add_subscribers

ONE_CLICK = {"List-Unsubscribe": "One-Click"}


async def make_list(db: Database, slug: str) -> uuid.UUID:
    async with db.connection() as conn:
        list_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO lists (slug, name) VALUES ($1, $2) RETURNING id", slug, slug.title()
        )
    return list_id


async def join(db: Database, subscriber: uuid.UUID, *list_ids: uuid.UUID) -> None:
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO list_memberships (list_id, subscriber_id, status, source, confirmed_at)"
            " VALUES ($1, $2, 'confirmed', 'test', now())",
            [(list_id, subscriber) for list_id in list_ids],
        )


async def issue_to(db: Database, *list_ids: uuid.UUID) -> uuid.UUID:
    async with db.connection() as conn:
        issue_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO newsletter_issues (id, title, text_content, html_content)"
            " VALUES (gen_random_uuid(), 'Weekly', 'Hi', '<p>Hi</p>') RETURNING id"
        )
        await conn.executemany(
            "INSERT INTO issue_lists (issue_id, list_id) VALUES ($1, $2)",
            [(issue_id, list_id) for list_id in list_ids],
        )
    return issue_id


async def state(db: Database, subscriber: uuid.UUID) -> tuple[str, dict[str, str], str | None]:
    async with db.connection() as conn:
        status = await conn.fetchval("SELECT status FROM subscriptions WHERE id = $1", subscriber)
        members = await conn.fetch(
            "SELECT l.slug, m.status FROM list_memberships m JOIN lists l ON l.id = m.list_id"
            " WHERE m.subscriber_id = $1",
            subscriber,
        )
        suppressed = await conn.fetchval(
            "SELECT s.reason FROM suppressions s JOIN subscriptions x"
            " ON s.address_key = herald_address_key(x.email) WHERE x.id = $1",
            subscriber,
        )
    return status, {r["slug"]: r["status"] for r in members}, suppressed


async def test_one_click_with_an_issue_leaves_its_lists_only(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1)  # in the default list, by the 0018 trigger
    news, deals, other = [await make_list(db, s) for s in ("news", "deals", "other")]
    await join(db, reader, news, deals, other)
    issue = await issue_to(db, news, deals)
    url = f"/unsubscribe/one-click?token={make_token(settings, reader)}&issue={issue}"
    for _ in range(2):  # idempotent
        response = await client.post(url, data=ONE_CLICK)
        assert response.status_code == 200
        assert "location" not in response.headers
    assert await state(db, reader) == (
        "confirmed",
        {
            "default": "confirmed",
            "news": "unsubscribed",
            "deals": "unsubscribed",
            "other": "confirmed",
        },
        None,
    )


async def test_an_issue_without_lists_leaves_the_default_list(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1)
    other = await make_list(db, "other")
    await join(db, reader, other)
    issue = await issue_to(db)
    url = f"/unsubscribe/one-click?token={make_token(settings, reader)}&issue={issue}"
    assert (await client.post(url, data=ONE_CLICK)).status_code == 200
    assert await state(db, reader) == (
        "confirmed",
        {"default": "unsubscribed", "other": "confirmed"},
        None,
    )


async def test_a_reader_the_backfill_has_not_reached_gets_an_unsubscribed_row(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1)
    async with db.connection() as conn:
        await conn.execute("DELETE FROM list_memberships")
    issue = await issue_to(db)
    url = f"/unsubscribe/one-click?token={make_token(settings, reader)}&issue={issue}"
    assert (await client.post(url, data=ONE_CLICK)).status_code == 200
    assert await state(db, reader) == ("confirmed", {"default": "unsubscribed"}, None)


@pytest.mark.parametrize("issue", ["", "&issue=", "&issue=not-a-uuid", f"&issue={uuid.uuid4()}"])
async def test_without_a_known_issue_the_reader_leaves_everything(
    client: httpx.AsyncClient, db: Database, settings: Settings, issue: str
) -> None:
    [reader] = await add_subscribers(db, 1)
    other = await make_list(db, "other")
    await join(db, reader, other)
    url = f"/unsubscribe/one-click?token={make_token(settings, reader)}{issue}"
    for _ in range(2):
        response = await client.post(url, data=ONE_CLICK)
        assert response.status_code == 200
    assert await state(db, reader) == (
        "unsubscribed",
        {"default": "unsubscribed", "other": "unsubscribed"},
        "unsubscribed",
    )
    async with db.connection() as conn:
        kept = await conn.fetchrow("SELECT email, source FROM suppressions")
    assert tuple(kept) == ("reader0@example.com", "one-click")


async def test_an_address_unsubscribed_before_suppressions_gets_one_on_the_next_click(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1, status="unsubscribed")
    url = f"/unsubscribe/one-click?token={make_token(settings, reader)}"
    assert (await client.post(url, data=ONE_CLICK)).status_code == 200
    assert (await state(db, reader))[2] == "unsubscribed"


@pytest.mark.parametrize("token", ["", "garbage", "AAAA.BBBB", "x" * 5000, "é.é", "%00", "a.b.c.d"])
async def test_a_bad_token_is_a_400_page_not_a_500(client: httpx.AsyncClient, token: str) -> None:
    for method in ("GET", "POST"):
        response = await client.request(
            method, "/unsubscribe/one-click", params={"token": token}, data=ONE_CLICK
        )
        assert response.status_code == 400, response.text


async def test_the_page_says_what_the_button_does_and_links_the_preferences(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1)
    news = await make_list(db, "news")
    issue = await issue_to(db, news)
    token = make_token(settings, reader)
    page = await client.get(f"/unsubscribe/one-click?token={token}&issue={issue}")
    assert page.status_code == 200
    assert (
        "Stop sending <strong>News</strong> to <strong>reader0@example.com</strong>?" in page.text
    )
    assert f'href="http://herald.test/preferences?token={token}"' in page.text
    assert f"issue={issue}" in page.text  # the button posts to the same lists
    assert page.headers["x-robots-tag"].startswith("noindex")
    assert page.headers["referrer-policy"] == "no-referrer"
    everything = await client.get(f"/unsubscribe/one-click?token={token}")
    assert "Stop sending every newsletter to" in everything.text
    assert (await state(db, reader))[0] == "confirmed"  # a GET changes nothing


def test_the_preferences_link_is_the_unsubscribe_link_s_token() -> None:
    from tests.support.database import make_settings

    settings = make_settings("postgresql://unused/db")
    reader = uuid.uuid4()
    url = unsubscribe_url(settings, reader)
    token = make_token(settings, reader)
    assert preferences_url_of(url) == f"http://herald.test/preferences?token={token}"
    assert preferences_url_of(url + f"&issue={uuid.uuid4()}") == preferences_url_of(url)
    assert preferences_url_of("https://unsubscribe.invalid/probe") == ""


async def test_unsubscribe_and_erasure_at_once_leave_an_erasure(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    readers = await add_subscribers(db, 20)

    async def erase(reader: uuid.UUID) -> None:
        async with db.transaction() as conn:
            await repository.delete_many(conn, [reader], "test")

    async def click(reader: uuid.UUID) -> None:
        url = f"/unsubscribe/one-click?token={make_token(settings, reader)}"
        assert (await client.post(url, data=ONE_CLICK)).status_code == 200

    await asyncio.gather(*(f(r) for r in readers for f in (erase, click)))
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT email, reason FROM suppressions")
        left = await conn.fetchval("SELECT count(*) FROM subscriptions")
    assert left == 0
    assert [tuple(r) for r in rows] == [(None, "erased")] * 20


async def test_the_one_click_of_a_delivered_issue_leaves_its_lists_only(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    """RFC 8058 end to end: the List-Unsubscribe URL of the email a worker sent names the
    issue; posting One-Click to it leaves that issue's list, and the reader still gets
    the next issue of another list, never one of the list they left."""
    from herald.issues.domain import IssueContent, TargetChoice
    from herald.issues.service import IssueService
    from tests.support.newsletters import drain, issue_worker, publish_now
    from tests.support.queue import RecordingProvider

    [reader] = await add_subscribers(db, 1)
    news, deals = [await make_list(db, slug) for slug in ("news", "deals")]
    await join(db, reader, news, deals)
    service = IssueService(db, settings)

    async def send(slug: str) -> list[str]:
        content = IssueContent.parse(title=f"To {slug}", text_content="Hello")
        issue_id = await service.create_draft(content, None, TargetChoice.parse([slug], None))
        await publish_now(service, issue_id)
        provider = RecordingProvider()
        await drain(issue_worker(db, settings, provider))
        return [dict(m.headers)["List-Unsubscribe"][1:-1] for m in provider.messages]

    [link] = await send("news")
    assert "&issue=" in link
    response = await client.post(link.replace("http://herald.test", ""), data=ONE_CLICK)
    assert response.status_code == 200
    assert "location" not in response.headers
    status, members, suppressed = await state(db, reader)
    assert (status, members["news"], members["deals"], suppressed) == (
        "confirmed",
        "unsubscribed",
        "confirmed",
        None,
    )
    assert len(await send("deals")) == 1
    assert await send("news") == []
