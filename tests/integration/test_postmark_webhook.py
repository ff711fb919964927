"""``POST /webhooks/postmark`` end to end: Postmark's documented bodies, sent with the
webhook's basic auth, become stored events and suppressions; replays, forgeries and
garbage change nothing."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from herald.core.config import EmailSettings, PostmarkSettings, Settings
from herald.core.db import Database
from herald.email.postmark import PostmarkProvider
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from tests.support.database import make_settings
from tests.support.newsletters import add_subscribers, drain, issue_worker, publish_now
from tests.support.postmark_sink import PostmarkSink

FIXTURES = Path(__file__).parents[1] / "fixtures" / "postmark"
USER, PASSWORD = "postmark", "webhook-secret-1234"
AUTH = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
URL = "/webhooks/postmark"


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(
        database_url,
        email={"postmark": {"webhook_username": USER, "webhook_password": PASSWORD}},
    )


def record(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    data.update(changes)
    return data


async def post(client: httpx.AsyncClient, body: object, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await client.post(
        URL, content=content, headers={"Content-Type": "application/json", **AUTH, **headers}
    )


async def count(db: Database, table: str = "email_events") -> int:
    async with db.connection() as conn:
        found: int = await conn.fetchval(f"SELECT count(*) FROM {table}")
    return found


async def suppression(db: Database, email: str) -> str | None:
    async with db.connection() as conn:
        reason: str | None = await conn.fetchval(
            "SELECT reason FROM suppressions WHERE address_key = herald_address_key($1)", email
        )
    return reason


async def test_a_sent_issue_bounces_into_a_suppression_and_the_next_issue_skips_it(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 3)
    service = IssueService(db, settings)
    async with PostmarkSink(token="t") as sink:
        email = EmailSettings(
            provider="postmark", postmark=PostmarkSettings(base_url=sink.base_url, server_token="t")
        )
        provider = PostmarkProvider(email)
        try:
            issue = await service.create_draft(
                IssueContent.parse(title="One", text_content="x"), None
            )
            assert await publish_now(service, issue) == 3
            await drain(issue_worker(db, settings, provider))  # type: ignore[arg-type]
        finally:
            await provider.aclose()
        sent = {m["To"]: m for m in sink.messages}
        message_ids = {to: mid for mid, to in sink.message_ids.items()}
    bounced = sent["reader1@example.com"]
    assert set(bounced["Metadata"]) == {"herald_delivery"}  # Herald's id went out with it
    async with db.connection() as conn:
        delivery = await conn.fetchrow(
            "SELECT id, provider_message_id FROM deliveries WHERE recipient = $1",
            "reader1@example.com",
        )
    assert bounced["Metadata"]["herald_delivery"] == str(delivery["id"])
    assert delivery["provider_message_id"] == message_ids["reader1@example.com"]

    body = record(
        "bounce",
        Email="reader1@example.com",
        MessageID=message_ids["reader1@example.com"],
        Metadata=bounced["Metadata"],
    )
    response = await post(client, body)
    assert (response.status_code, response.json()) == (200, {"stored": 1})
    assert await suppression(db, "reader1@example.com") == "hard_bounce"
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT delivery_id, issue_id, suppressed FROM email_events")
    assert (row["delivery_id"], row["issue_id"], row["suppressed"]) == (delivery["id"], issue, True)

    # Replayed (Postmark retries): 200, nothing new.
    again = await post(client, body)
    assert (again.status_code, again.json()) == (200, {"stored": 0})
    assert await count(db) == 1

    second = await service.create_draft(IssueContent.parse(title="Two", text_content="y"), None)
    assert await publish_now(service, second) == 2  # reader1 is no longer mailed


async def test_a_complaint_found_by_message_id_only(
    client: httpx.AsyncClient, db: Database
) -> None:
    [reader] = await add_subscribers(db, 1)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, status, max_attempts,"
            " provider_message_id) VALUES ('test', 'reader0@example.com', $1, 'sent', 5, 'pm-9')",
            reader,
        )
    response = await post(client, record("spam_complaint", Email="", MessageID="pm-9"))
    assert response.status_code == 200
    assert await suppression(db, "reader0@example.com") == "complaint"
    async with db.connection() as conn:
        status = await conn.fetchval("SELECT status FROM subscriptions WHERE id = $1", reader)
    assert status == "unsubscribed"


async def test_every_documented_record(client: httpx.AsyncClient, db: Database) -> None:
    for name in ("bounce", "spam_complaint", "subscription_change", "delivery"):
        response = await post(client, record(name))
        assert (response.status_code, response.json()) == (200, {"stored": 1}), name
    assert await suppression(db, "john@example.com") == "hard_bounce"  # the bounce came first
    assert await suppression(db, "bounced-address@wildbit.com") == "provider"
    async with db.connection() as conn:
        kinds = [r["kind"] for r in await conn.fetch("SELECT kind FROM email_events ORDER BY id")]
    assert kinds == ["hard_bounce", "complaint", "provider_suppression", "delivered"]


async def test_records_herald_does_not_keep_are_accepted(
    client: httpx.AsyncClient, db: Database
) -> None:
    for body in (
        {"RecordType": "Open", "MessageID": "x"},
        {"RecordType": "Click"},
        record("bounce", Type="AutoResponder"),
        record("subscription_change", SuppressSending=False, SuppressionReason=None),
    ):
        response = await post(client, body)
        assert (response.status_code, response.json()) == (200, {"stored": 0})
    assert await count(db) == 0


async def test_a_bounce_for_a_message_herald_never_sent(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = record("bounce", Email="stranger@example.net", MessageID="unknown", ID=7)
    response = await post(client, body)
    assert (response.status_code, response.json()) == (200, {"stored": 1})
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT delivery_id, subscriber_id FROM email_events")
    assert (row["delivery_id"], row["subscriber_id"]) == (None, None)
    assert await suppression(db, "stranger@example.net") == "hard_bounce"


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic " + base64.b64encode(f"{USER}:wrong".encode()).decode(),
        "Basic " + base64.b64encode(f"other:{PASSWORD}".encode()).decode(),
        "Basic " + base64.b64encode(f"{USER}:{PASSWORD}x".encode()).decode(),
        "Bearer " + PASSWORD,
        "Basic ???",
    ],
)
async def test_wrong_or_missing_credentials_are_refused(
    client: httpx.AsyncClient, db: Database, authorization: str | None
) -> None:
    headers = {"Content-Type": "application/json"}
    if authorization is not None:
        headers["Authorization"] = authorization
    response = await client.post(URL, content=json.dumps(record("bounce")), headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic ")
    assert await count(db) == 0


async def test_without_configured_credentials_every_call_is_refused(
    database_url: str, db: Database
) -> None:
    from herald.composition.app import create_app

    app = create_app(make_settings(database_url), db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            empty = "Basic " + base64.b64encode(b":").decode()
            for headers in ({}, {"Authorization": empty}, AUTH):
                response = await c.post(URL, content=b"{}", headers=headers)
                assert response.status_code == 401
                assert "not configured" not in response.text  # nothing about the set-up
    assert await count(db) == 0


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not JSON"),
        (b"[1, 2]", "JSON object"),
        (b"{}", "RecordType"),
        (b'{"RecordType": "Bounce", "Type": "HardBounce", "ID": 1, "Email": []}', "Email"),
    ],
)
async def test_garbage_is_a_400_naming_the_problem(
    client: httpx.AsyncClient, db: Database, body: bytes, message: str
) -> None:
    response = await post(client, body, Accept="application/json")
    assert response.status_code == 400
    assert message in response.text
    assert await count(db) == 0


async def test_a_deeply_nested_body_is_a_400_and_a_nul_is_dropped_not_a_500(
    client: httpx.AsyncClient, db: Database
) -> None:
    """Under the size limit, what the JSON parser or Postgres cannot take as it is:
    100,000 nested arrays (RecursionError), and a NUL in a value that is stored."""
    nested = b"[" * 100_000 + b"]" * 100_000
    response = await post(client, nested, Accept="application/json")
    assert response.status_code == 400
    assert "not JSON" in response.text
    assert await count(db) == 0
    body = record("bounce", MessageID="abc\x00def", Email="reader0@example.com")  # "\u0000"
    body["Details"] = "550 5.1.1 \x00" * 100
    response = await post(client, body)
    assert response.status_code == 200
    assert response.json()["stored"] == 1
    assert await suppression(db, "reader0@example.com") == "hard_bounce"


async def test_a_huge_body_is_refused(client: httpx.AsyncClient, db: Database) -> None:
    body = record("bounce", Content="x" * (1024 * 1024 + 1))
    response = await post(client, body)
    assert response.status_code == 413
    assert await count(db) == 0
    # A bounce with its dump (include content) under the limit is kept.
    response = await post(client, record("bounce", Content="x" * 500_000))
    assert response.status_code == 200


async def test_concurrent_copies_of_one_record_store_one_row(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = record("bounce", Email="reader0@example.com")
    responses = await asyncio.gather(*(post(client, body) for _ in range(8)))
    assert [r.status_code for r in responses] == [200] * 8
    assert sorted(r.json()["stored"] for r in responses) == [0] * 7 + [1]
    assert await count(db) == 1
    assert await count(db, "suppressions") == 1


async def test_soft_bounces_through_the_webhook(client: httpx.AsyncClient, db: Database) -> None:
    address = "flaky@example.org"
    for n, day in enumerate(("2026-11-01", "2026-11-20", "2026-11-25")):
        body = record("bounce", ID=100 + n, Type="SoftBounce", Email=address)
        body["BouncedAt"] = f"{day}T10:00:00Z"
        assert (await post(client, body)).status_code == 200
        expected = "hard_bounce" if n == 2 else None
        assert await suppression(db, address) == expected


@pytest.mark.parametrize("path", ["/webhooks/postmark", "/webhooks/ses"])
async def test_the_plain_webhook_routes_refuse_other_methods_cleanly(
    client: httpx.AsyncClient, db: Database, path: str
) -> None:
    # Plain Starlette routes (no FastAPI dependencies): a wrong method is still a 405 from
    # the one error mapping, never a 500, and stores nothing.
    for method in ("GET", "PUT", "DELETE"):
        response = await client.request(method, path)
        assert response.status_code == 405, (method, response.text)
        assert "POST" in response.headers["allow"]
    assert await count(db) == 0
