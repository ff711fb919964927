"""Idempotency-Key on the API's POSTs (IETF httpapi draft): the first response replayed
for the same key and payload, 422 for another payload, 409 while the first is in flight;
keys per user; failures worth retrying release the key."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from herald.api.access import Access, operation
from herald.api.idempotency import ApiRoute
from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import NotFound
from tests.support.api import Keys, api_client, make_keys, new_app

CALLS: list[dict[str, Any]] = []
GATE: dict[str, asyncio.Event] = {}  # per test: "started" is set by each call


@pytest.fixture
async def keys(db: Database, settings: Settings) -> Keys:
    return await make_keys(db, settings)


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    CALLS.clear()
    GATE.clear()
    GATE["started"] = asyncio.Event()
    app = new_app(settings, db)
    router = APIRouter(prefix="/api/v1", route_class=ApiRoute)

    @router.post("/test-things", status_code=201, **operation(Access.WRITE, idempotent=True))
    async def make_thing(body: dict[str, Any]) -> dict[str, Any]:
        CALLS.append(body)
        GATE["started"].set()
        if "wait" in body:
            await GATE[body["wait"]].wait()
        if body.get("missing"):
            raise NotFound("no such thing")
        if body.get("bug"):
            raise RuntimeError("a bug")
        return {"n": len(CALLS), "body": body}

    app.include_router(router)
    async with api_client(app, raise_app_exceptions=False) as c:
        yield c


def with_key(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def test_the_same_key_and_payload_replays_the_first_response(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    headers = with_key(keys.admin_write, "k-1")
    first = await client.post("/api/v1/test-things", json={"a": 1, "b": [1, 2]}, headers=headers)
    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    # Same JSON written differently: the same payload.
    again = await client.post(
        "/api/v1/test-things",
        content=b'{ "b": [1, 2],  "a": 1 }',
        headers={**headers, "Content-Type": "application/json"},
    )
    assert again.status_code == 201
    assert again.json() == first.json() == {"n": 1, "body": {"a": 1, "b": [1, 2]}}
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["content-type"] == "application/json"
    assert len(CALLS) == 1
    # A quoted key (a Structured Fields string) is the same key.
    quoted = await client.post(
        "/api/v1/test-things",
        json={"a": 1, "b": [1, 2]},
        headers=with_key(keys.admin_write, '"k-1"'),
    )
    assert quoted.json() == first.json()
    # Without a key, nothing is remembered.
    await client.post("/api/v1/test-things", json={"a": 1, "b": [1, 2]}, headers=keys.admin_write)
    assert len(CALLS) == 2


async def test_the_same_key_with_another_payload_is_a_422(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    headers = with_key(keys.admin_write, "k-2")
    assert (await client.post("/api/v1/test-things", json={"a": 1}, headers=headers)).is_success
    other = await client.post("/api/v1/test-things", json={"a": 2}, headers=headers)
    assert other.status_code == 422
    assert other.headers["content-type"].startswith("application/problem+json")
    assert other.json()["error"] == "unprocessable"
    assert len(CALLS) == 1


async def test_a_key_in_flight_is_a_409_then_replays(client: httpx.AsyncClient, keys: Keys) -> None:
    GATE["one"] = asyncio.Event()
    headers = with_key(keys.admin_write, "k-3")
    first = asyncio.create_task(
        client.post("/api/v1/test-things", json={"wait": "one"}, headers=headers)
    )
    async with asyncio.timeout(10):
        await GATE["started"].wait()  # the first request holds the key and runs
    busy = await client.post("/api/v1/test-things", json={"wait": "one"}, headers=headers)
    assert busy.status_code == 409, busy.text
    assert "still being processed" in busy.json()["detail"]
    GATE["one"].set()
    done = await first
    assert done.status_code == 201
    replay = await client.post("/api/v1/test-things", json={"wait": "one"}, headers=headers)
    assert replay.json() == done.json()
    assert len(CALLS) == 1


async def test_keys_are_per_user(client: httpx.AsyncClient, keys: Keys) -> None:
    mine = await client.post(
        "/api/v1/test-things", json={"a": 1}, headers=with_key(keys.admin_write, "shared")
    )
    theirs = await client.post(
        "/api/v1/test-things", json={"a": 1}, headers=with_key(keys.editor_write, "shared")
    )
    assert mine.json()["n"] == 1
    assert theirs.json()["n"] == 2
    # Other keys of the same user share the user's keys.
    _ = keys


async def test_errors_are_stored_but_retryable_ones_release_the_key(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    missing = with_key(keys.admin_write, "k-404")
    assert (
        await client.post("/api/v1/test-things", json={"missing": True}, headers=missing)
    ).status_code == 404
    again = await client.post("/api/v1/test-things", json={"missing": True}, headers=missing)
    assert again.status_code == 404
    assert again.headers["idempotent-replayed"] == "true"
    assert len(CALLS) == 1
    # A read-only key is refused (403): the same key works once it has the right one.
    key = "k-scope"
    refused = await client.post(
        "/api/v1/test-things", json={"a": 1}, headers=with_key(keys.admin_read, key)
    )
    assert refused.status_code == 403
    ok = await client.post(
        "/api/v1/test-things", json={"a": 1}, headers=with_key(keys.admin_write, key)
    )
    assert ok.status_code == 201
    assert "idempotent-replayed" not in ok.headers
    # A bug (500) releases the key too.
    bug = with_key(keys.admin_write, "k-bug")
    assert (
        await client.post("/api/v1/test-things", json={"bug": True}, headers=bug)
    ).status_code == 500
    assert (
        await client.post("/api/v1/test-things", json={"bug": True}, headers=bug)
    ).status_code == 500
    assert len(CALLS) == 4


async def test_a_bad_key_or_a_key_where_none_is_taken_is_a_400(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for bad in ("", "x" * 256, "has space", 'a"b'):
        response = await client.post(
            "/api/v1/test-things", json={}, headers=with_key(keys.admin_write, bad)
        )
        assert response.status_code == 400, bad
        assert response.json()["errors"][0]["field"] == "Idempotency-Key"
    token = await client.post(
        "/api/v1/auth/token",
        data={"username": "admin", "password": "x"},
        headers={"Idempotency-Key": "k"},
    )
    assert token.status_code == 400
    assert not CALLS


async def test_without_credentials_a_keyed_post_is_a_401(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/test-things", json={}, headers={"Idempotency-Key": "k"})
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")


async def test_a_claim_whose_request_died_is_taken_over_after_a_while(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    async with db.connection() as conn:
        for key, minutes in (("api:k-dead", 10), ("api:k-recent", 1)):
            await conn.execute(
                "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at)"
                " VALUES ($1, $2, $3, now() - make_interval(mins => $4))",
                keys.admin_id,
                key,
                b"\x00" * 32,
                minutes,
            )
    dead = await client.post(
        "/api/v1/test-things", json={"a": 1}, headers=with_key(keys.admin_write, "k-dead")
    )
    assert dead.status_code == 201, dead.text  # its process died 10 minutes ago
    recent = await client.post(
        "/api/v1/test-things", json={"a": 1}, headers=with_key(keys.admin_write, "k-recent")
    )
    assert recent.status_code == 422  # another request's key, maybe still running
    assert len(CALLS) == 1


async def test_a_request_cancelled_midway_releases_its_key(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    GATE["never"] = asyncio.Event()
    headers = with_key(keys.admin_write, "k-gone")
    first = asyncio.create_task(
        client.post("/api/v1/test-things", json={"wait": "never"}, headers=headers)
    )
    async with asyncio.timeout(10):
        await GATE["started"].wait()
    first.cancel()  # the client hangs up while the handler runs
    with pytest.raises(asyncio.CancelledError):
        await first
    GATE["never"].set()
    again = await client.post("/api/v1/test-things", json={"wait": "never"}, headers=headers)
    assert again.status_code == 201, again.text  # not a 409 for the next five minutes
    assert len(CALLS) == 2
