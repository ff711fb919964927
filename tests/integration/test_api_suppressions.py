"""/api/v1/suppressions: keyset pages, add (unsubscribing the address at once), remove
(admins only; never an erasure), problem documents for bad input."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from tests.support.api import Keys, api_client, make_keys, new_app
from tests.support.newsletters import add_subscribers

URL = "/api/v1/suppressions"


@pytest.fixture
async def keys(db: Database, settings: Settings) -> Keys:
    return await make_keys(db, settings)


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(new_app(settings, db)) as c:
        yield c


async def walk(client: httpx.AsyncClient, keys: Keys, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = await client.get(URL, params=query, headers=keys.editor_read)
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            return items


async def test_add_list_and_remove(client: httpx.AsyncClient, db: Database, keys: Keys) -> None:
    await add_subscribers(db, 1)
    headers = {**keys.editor_write, "Idempotency-Key": str(uuid.uuid4())}
    created = await client.post(
        URL, json={"email": " Reader0@Example.com", "reason": "complaint"}, headers=headers
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert (body["email"], body["reason"], body["source"], body["removable"]) == (
        "Reader0@example.com",
        "complaint",
        "api:write key",
        True,
    )
    assert body["created"] is True
    replay = await client.post(
        URL, json={"email": " Reader0@Example.com", "reason": "complaint"}, headers=headers
    )
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["created"] is True
    again = await client.post(URL, json={"email": "reader0@example.com"}, headers=keys.editor_write)
    assert again.status_code == 200
    assert (again.json()["reason"], again.json()["created"]) == ("complaint", False)
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT status FROM subscriptions") == "unsubscribed"

    editor = await client.delete(f"{URL}/reader0@example.com", headers=keys.editor_write)
    assert editor.status_code == 403
    removed = await client.delete(f"{URL}/READER0@example.com", headers=keys.admin_write)
    assert removed.status_code == 200
    assert removed.json()["reason"] == "complaint"
    missing = await client.delete(f"{URL}/reader0@example.com", headers=keys.admin_write)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"


async def test_pages_filters_and_erasures(
    client: httpx.AsyncClient, db: Database, keys: Keys
) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO suppressions (address_key, email, reason, created_at)"
            " SELECT herald_address_key(e), e, r, now() - make_interval(secs => n)"
            " FROM (SELECT n, 'p' || n || '@example.com' AS e,"
            "       (ARRAY['manual', 'unsubscribed'])[n % 2 + 1] AS r"
            "       FROM generate_series(1, 25) AS n) AS x"
        )
        await conn.execute(
            "INSERT INTO suppressions (address_key, email, reason)"
            " VALUES (herald_address_key('gone@example.com'), NULL, 'erased')"
        )
    everything = await walk(client, keys, limit=7)
    assert len(everything) == 26
    assert len({(i["email"], i["created_at"]) for i in everything}) == 26
    assert everything[0] == {**everything[0], "email": None, "reason": "erased", "removable": False}
    manual = await walk(client, keys, reason="manual", limit=5)
    assert len(manual) == 12
    assert {i["reason"] for i in manual} == {"manual"}
    assert [i["email"] for i in await walk(client, keys, search="P7@")] == ["p7@example.com"]
    erased = await walk(client, keys, search="Gone@example.com ")
    assert [(i["email"], i["reason"]) for i in erased] == [(None, "erased")]
    refused = await client.delete(f"{URL}/gone@example.com", headers=keys.admin_write)
    assert refused.status_code == 409
    assert "erased" in refused.json()["detail"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "forged"}, "cursor"),
        ({"reason": "bogus"}, "reason"),
        ({"limit": "0"}, "limit"),
        ({"search": "x\x00"}, "search"),
        ({"search": "x" * 400}, "search"),
    ],
)
async def test_bad_list_parameters_are_400s_naming_them(
    client: httpx.AsyncClient, keys: Keys, params: dict[str, str], field: str
) -> None:
    response = await client.get(URL, params=params, headers=keys.editor_read)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


@pytest.mark.parametrize(
    "body",
    [
        {"email": "nope"},
        {"email": "a@example.com", "reason": "erased"},
        {"email": "a@example.com", "extra": 1},
        {"email": 5},
        {},
    ],
)
async def test_bad_bodies_are_400s(
    client: httpx.AsyncClient, db: Database, keys: Keys, body: dict[str, Any]
) -> None:
    response = await client.post(URL, json=body, headers=keys.editor_write)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_a_bad_address_to_remove_is_a_400(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.delete(f"{URL}/not-an-address", headers=keys.admin_write)
    assert response.status_code == 400


async def test_erasing_a_subscriber_through_the_api(
    client: httpx.AsyncClient, db: Database, keys: Keys
) -> None:
    [reader] = await add_subscribers(db, 1)
    url = f"/api/v1/subscribers/{reader}/erase"
    headers = {**keys.editor_write, "Idempotency-Key": str(uuid.uuid4())}
    erased = await client.post(url, headers=headers)
    assert erased.status_code == 200, erased.text
    assert erased.json() == {"id": str(reader), "erased": True}
    assert (await client.post(url, headers=headers)).status_code == 200  # replayed
    assert (await client.post(url, headers=keys.editor_write)).status_code == 404
    assert (await client.post(url, headers=keys.editor_read)).status_code == 403
    rows = await walk(client, keys, search="reader0@example.com")
    assert [(r["email"], r["reason"], r["removable"]) for r in rows] == [(None, "erased", False)]
    assert [r["source"] for r in rows] == ["api"]  # who erased it: the API, not the admin
    again = await client.post(
        "/api/v1/subscribers",
        json={"email": "READER0@example.com", "name": "Again"},
        headers=keys.editor_write,
    )
    assert again.status_code == 409
