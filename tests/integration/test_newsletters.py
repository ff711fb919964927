"""Publishing through the contract form, idempotency, suppression and one-click unsubscribe."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.issues.service import IssueService
from herald.subscriptions.unsubscribe import make_token, unsubscribe_url
from tests.support.newsletters import (
    add_subscribers,
    create_admin,
    drain,
    fan_out,
    issue_worker,
    newsletter_form,
    signed_in,
)
from tests.support.queue import RecordingProvider

ACCEPTED = "The newsletter issue has been accepted - emails will go out shortly."
LINK = re.compile(r"http://herald\.test/subscriptions/confirm\?subscription_token=[A-Za-z0-9]+")


async def publish(client: httpx.AsyncClient, **fields: str) -> httpx.Response:
    form = await newsletter_form(client)
    data = {"title": "Issue #1", "text_content": "Hello text", "html_content": "<p>Hello</p>"}
    data.update(form)
    data.update(fields)
    return await client.post("/admin/newsletters", data=data)


async def count(db: Database, sql: str) -> int:
    async with db.connection() as conn:
        value: int = await conn.fetchval(sql)
        return value


async def test_the_form_has_the_contract_fields(admin_client: httpx.AsyncClient) -> None:
    page = (await admin_client.get("/admin/newsletters")).text
    for field in ("title", "text_content", "html_content", "idempotency_key", "csrf_token"):
        assert f'name="{field}"' in page
    again = (await admin_client.get("/admin/newsletters")).text
    key = re.compile(r'name="idempotency_key" value="([^"]+)"')
    assert key.search(page).group(1) != key.search(again).group(1)  # type: ignore[union-attr]


async def test_an_issue_reaches_confirmed_subscribers_only(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    # One subscriber through the real flow (subscribe + confirm), one left pending.
    await admin_client.post("/subscriptions", data={"name": "Conf", "email": "conf@example.com"})
    await admin_client.post("/subscriptions", data={"name": "Pend", "email": "pend@example.com"})
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT recipient, message->>'text_body' AS body FROM deliveries ORDER BY id"
        )
    confirm = next(LINK.search(r["body"]) for r in rows if r["recipient"] == "conf@example.com")
    assert confirm
    assert (await admin_client.get(confirm.group(0))).status_code == 200

    response = await publish(admin_client)
    assert (response.status_code, response.headers["location"]) == (303, "/admin/newsletters")
    assert ACCEPTED in (await admin_client.get("/admin/newsletters")).text

    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    issues = [m for m in provider.messages if m.subject == "Issue #1"]
    assert [m.recipient for m in issues] == ["conf@example.com"]
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT status FROM newsletter_issues") == "sent"


async def test_issue_emails_carry_one_click_unsubscribe(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [subscriber] = await add_subscribers(db, 1)
    await publish(admin_client, html_content="<p>Hi {{ subscriber.name }}</p>")
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    [message] = provider.messages
    headers = dict(message.headers)
    async with db.connection() as conn:
        issue_id = await conn.fetchval("SELECT id FROM newsletter_issues")
    # The link names the issue, so one click leaves that issue's lists.
    url = f"{unsubscribe_url(settings, subscriber)}&issue={issue_id}"
    assert headers["List-Unsubscribe"] == f"<{url}>"
    assert url.startswith("http://herald.test/unsubscribe/one-click?token=")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert "herald.test" in headers["List-Id"]
    assert "Hi Reader 0" in message.html_body
    assert url.replace("&", "&amp;") in message.html_body or url in message.html_body
    assert url in message.text_body


async def test_the_same_key_publishes_once_and_replays_the_response(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 3)
    form = await newsletter_form(admin_client)
    data = {"title": "Once", "text_content": "t", "html_content": "<p>h</p>", **form}
    first = await admin_client.post("/admin/newsletters", data=data)
    second = await admin_client.post("/admin/newsletters", data=data)
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert ACCEPTED in (await admin_client.get("/admin/newsletters")).text
    assert await count(db, "SELECT count(*) FROM newsletter_issues") == 1
    await fan_out(IssueService(db, settings))
    assert await count(db, "SELECT count(*) FROM deliveries WHERE issue_id IS NOT NULL") == 3


async def test_concurrent_submissions_with_one_key_make_one_issue(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 20)
    form = await newsletter_form(admin_client)
    data = {"title": "Race", "text_content": "t", "html_content": "<p>h</p>", **form}
    responses = await asyncio.gather(
        *(admin_client.post("/admin/newsletters", data=data) for _ in range(6))
    )
    assert {r.status_code for r in responses} == {303}
    assert await count(db, "SELECT count(*) FROM newsletter_issues") == 1
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    assert len(provider.sent) == 20
    assert set(provider.sent.values()) == {1}


async def test_the_same_key_with_another_payload_is_422(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    form = await newsletter_form(admin_client)
    base = {"text_content": "t", "html_content": "<p>h</p>", **form}
    assert (
        await admin_client.post("/admin/newsletters", data={**base, "title": "A"})
    ).status_code == 303
    other = await admin_client.post("/admin/newsletters", data={**base, "title": "B"})
    assert other.status_code == 422
    assert await count(db, "SELECT count(*) FROM newsletter_issues") == 1


async def test_keys_expire_after_24_hours(admin_client: httpx.AsyncClient, db: Database) -> None:
    form = await newsletter_form(admin_client)
    data = {"title": "Weekly", "text_content": "t", "html_content": "", **form}
    await admin_client.post("/admin/newsletters", data=data)
    async with db.connection() as conn:
        await conn.execute("UPDATE idempotency_keys SET created_at = now() - interval '25 hours'")
    assert (await admin_client.post("/admin/newsletters", data=data)).status_code == 303
    assert await count(db, "SELECT count(*) FROM newsletter_issues") == 2


async def test_keys_are_scoped_per_user(
    admin_client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    second_admin: httpx.AsyncClient,
) -> None:
    form = await newsletter_form(admin_client)
    data = {"title": "Mine", "text_content": "t", "html_content": ""}
    await admin_client.post("/admin/newsletters", data={**data, **form})
    theirs = await newsletter_form(second_admin)
    theirs["idempotency_key"] = form["idempotency_key"]
    assert (
        await second_admin.post("/admin/newsletters", data={**data, **theirs})
    ).status_code == 303
    assert await count(db, "SELECT count(*) FROM newsletter_issues") == 2


@pytest.fixture
async def second_admin(db: Database, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    await create_admin(db, settings, "editor")
    async with signed_in(settings, db, "editor") as client:
        yield client


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({"idempotency_key": ""}, 400),
        ({"idempotency_key": "no spaces allowed"}, 400),
        ({"title": ""}, 400),
        ({"text_content": "", "html_content": ""}, 400),
        ({"html_content": "{% if %}"}, 400),
        ({"csrf_token": "forged"}, 403),
    ],
)
async def test_bad_submissions_are_refused_and_publish_nothing(
    admin_client: httpx.AsyncClient, db: Database, fields: dict[str, str], status: int
) -> None:
    assert (await publish(admin_client, **fields)).status_code == status
    assert await count(db, "SELECT count(*) FROM newsletter_issues") == 0


async def test_anonymous_posts_go_to_login(client: httpx.AsyncClient, db: Database) -> None:
    response = await client.post("/admin/newsletters", data={"title": "x"})
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert await count(db, "SELECT count(*) FROM newsletter_issues") == 0


# -- unsubscribing -----------------------------------------------------------------------


async def test_unsubscribing_between_enqueue_and_send_suppresses_the_delivery(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    stays, leaves = await add_subscribers(db, 2)
    await publish(admin_client)
    await fan_out(IssueService(db, settings))  # both are queued, then one leaves
    response = await admin_client.post(
        "/unsubscribe/one-click",
        params={"token": make_token(settings, leaves)},
        data={"List-Unsubscribe": "One-Click"},
    )
    assert response.status_code == 200
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    assert list(provider.sent) == ["reader0@example.com"]
    async with db.connection() as conn:
        status = await conn.fetchval(
            "SELECT status FROM deliveries WHERE subscriber_id = $1", leaves
        )
    assert status == "suppressed"
    del stays


async def test_one_click_works_twice_and_the_next_issue_skips_them(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    _, leaver = await add_subscribers(db, 2)
    token = make_token(settings, leaver)
    for _ in range(2):
        response = await admin_client.post(
            f"/unsubscribe/one-click?token={token}", data={"List-Unsubscribe": "One-Click"}
        )
        assert response.status_code == 200
        assert "location" not in response.headers
    await publish(admin_client, title="Next")
    await fan_out(IssueService(db, settings))
    assert await count(db, "SELECT count(*) FROM deliveries WHERE issue_id IS NOT NULL") == 1


async def test_one_click_accepts_multipart_and_needs_no_session(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [subscriber] = await add_subscribers(db, 1)
    response = await client.post(
        f"/unsubscribe/one-click?token={make_token(settings, subscriber)}",
        files={"List-Unsubscribe": (None, "One-Click")},
    )
    assert response.status_code == 200
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT status FROM subscriptions") == "unsubscribed"


async def test_the_unsubscribe_link_shows_a_confirmation_page_first(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [subscriber] = await add_subscribers(db, 1)
    page = await client.get(f"/unsubscribe/one-click?token={make_token(settings, subscriber)}")
    assert page.status_code == 200
    assert "reader0@example.com" in page.text
    assert 'method="post"' in page.text
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT status FROM subscriptions") == "confirmed"


@pytest.mark.parametrize("token", ["", "garbage", "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA"])
async def test_forged_unsubscribe_tokens_are_refused(
    client: httpx.AsyncClient, db: Database, settings: Settings, token: str
) -> None:
    [subscriber] = await add_subscribers(db, 1)
    genuine = make_token(settings, subscriber)
    tampered = genuine[:-1] + ("A" if genuine[-1] != "A" else "B")
    for candidate in (token, tampered):
        response = await client.post(f"/unsubscribe/one-click?token={candidate}")
        assert response.status_code == 400
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT status FROM subscriptions") == "confirmed"
