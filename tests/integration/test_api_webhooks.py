"""/api/v1/webhooks: endpoints (the secret shown once, never listed), bad URLs and event
types refused with a problem naming them, messages in keyset pages with their attempts,
replay of a failed one (409 otherwise), delete."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.webhooks.sender import WebhookSender
from tests.support.api import Keys, api_client, make_keys, new_app
from tests.support.webhook_receiver import Receiver, receiver

URL = "/api/v1/webhooks"


@pytest.fixture
async def keys(db: Database, settings: Settings) -> Keys:
    return await make_keys(db, settings)


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(new_app(settings, db)) as c:
        yield c


@pytest.fixture
async def hook() -> AsyncIterator[Receiver]:
    async with receiver() as rec:
        yield rec


@pytest.mark.parametrize(
    ("body", "names"),
    [
        ({"url": "ftp://example.com/x", "event_types": ["issue.sent"]}, "https://"),
        ({"url": "https://u:p@example.com/x", "event_types": ["issue.sent"]}, "password"),
        ({"url": "https://example.com/x#f", "event_types": ["issue.sent"]}, "fragment"),
        ({"url": "https:///x", "event_types": ["issue.sent"]}, "host"),
        ({"url": "https://example.com/a b", "event_types": ["issue.sent"]}, "spaces"),
        ({"url": "https://example.com/", "event_types": []}, "event_types"),
        ({"url": "https://example.com/", "event_types": ["issue.deleted"]}, "event_types"),
        ({"url": "https://example.com/", "event_types": ["issue.sent"], "x": 1}, "x"),
    ],
)
async def test_bad_endpoints_are_refused_naming_the_problem(
    client: httpx.AsyncClient, keys: Keys, body: dict[str, object], names: str
) -> None:
    answer = await client.post(URL, json=body, headers=keys.admin_write)
    assert answer.status_code == 400, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert names in answer.text
    listed = await client.get(URL, headers=keys.admin_read)
    assert listed.json()["items"] == []


async def test_endpoint_lifecycle_messages_and_replay(
    client: httpx.AsyncClient,
    keys: Keys,
    db: Database,
    settings: Settings,
    hook: Receiver,
) -> None:
    created = await client.post(
        URL,
        json={"url": hook.url, "description": "CRM", "event_types": ["subscriber.created"]},
        headers=keys.admin_write,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_")
    assert created.headers["Location"] == f"{URL}/{body['id']}"
    hook.secret = body["secret"]
    endpoint = f"{URL}/{body['id']}"

    listed = (await client.get(URL, headers=keys.admin_read)).json()["items"]
    assert [e["id"] for e in listed] == [body["id"]]
    assert "secret" not in listed[0]
    assert "secret" not in (await client.get(endpoint, headers=keys.admin_read)).json()
    assert (await client.get(URL, headers=keys.editor_read)).status_code == 403

    async with db.connection() as conn:
        for n in range(3):
            await conn.execute(
                "INSERT INTO subscriptions (id, email, name, status) VALUES"
                " (gen_random_uuid(), $1, 'R', 'pending_confirmation')",
                f"r{n}@example.com",
            )
    hook.default = 500
    quick = settings.webhooks.model_copy(
        update={"max_attempts": 1, "retry_base_seconds": 0.01, "retry_max_seconds": 0.01}
    )
    sender = WebhookSender(db, quick)
    try:
        assert await sender.turn() == 3
    finally:
        await sender.aclose()
    assert len(hook.verified()) == 3

    first = await client.get(f"{endpoint}/messages", params={"limit": 2}, headers=keys.admin_read)
    assert first.status_code == 200, first.text
    page = first.json()
    assert [m["status"] for m in page["items"]] == ["failed", "failed"]
    rest = await client.get(
        f"{endpoint}/messages",
        params={"limit": 2, "cursor": page["next_cursor"]},
        headers=keys.admin_read,
    )
    ids = [m["id"] for m in page["items"] + rest.json()["items"]]
    assert ids == sorted(ids, reverse=True)
    assert len(ids) == 3
    assert rest.json()["next_cursor"] is None
    tampered = await client.get(
        f"{endpoint}/messages",
        params={"cursor": "x" + page["next_cursor"]},
        headers=keys.admin_read,
    )
    assert tampered.status_code == 400

    one = await client.get(f"{endpoint}/messages/{ids[0]}", headers=keys.admin_read)
    detail = one.json()
    assert detail["payload"]["type"] == "subscriber.created"
    assert [a["status_code"] for a in detail["attempt_log"]] == [500]
    assert len(detail["attempt_log"][0]["response_excerpt"]) <= 500

    replay = await client.post(
        f"{endpoint}/messages/{ids[0]}/replay",
        headers={**keys.admin_write, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert replay.status_code == 202, replay.text
    assert replay.json()["status"] == "pending"
    again = await client.post(
        f"{endpoint}/messages/{ids[0]}/replay",
        headers={**keys.admin_write, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert again.status_code == 409
    missing = await client.get(f"{endpoint}/messages/{2**70}", headers=keys.admin_read)
    assert missing.status_code in (400, 404)

    replay_all = await client.post(
        f"{endpoint}/replay-failed",
        headers={**keys.admin_write, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert replay_all.status_code == 200, replay_all.text
    assert replay_all.json() == {"replayed": 2}  # the other two; the first is pending already
    disabled = await client.patch(endpoint, json={"enabled": False}, headers=keys.admin_write)
    assert disabled.status_code == 200, disabled.text
    assert disabled.json()["enabled"] is False
    assert disabled.json()["pending"] == 0  # the replayed one failed with the endpoint

    refused = await client.post(
        f"{endpoint}/replay-failed",
        headers={**keys.admin_write, "Idempotency-Key": str(uuid.uuid4())},
    )
    assert refused.status_code == 409
    rotated = await client.post(f"{endpoint}/secret", headers=keys.admin_write)
    assert rotated.status_code == 200
    assert rotated.json()["secret"] not in {body["secret"]}

    gone = await client.delete(endpoint, headers=keys.admin_write)
    assert gone.status_code == 204
    assert (await client.get(endpoint, headers=keys.admin_read)).status_code == 404
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM webhook_messages") == 0
