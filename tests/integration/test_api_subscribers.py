"""/api/v1/subscribers: keyset pages with filters and search, get, create (double opt-in),
rename, unsubscribe — through the admin's and the sign-up's services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from tests.support.api import Keys, api_client, make_keys, new_app

URL = "/api/v1/subscribers"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
async def keys(db: Database, settings: Settings) -> Keys:
    return await make_keys(db, settings)


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(new_app(settings, db)) as c:
        yield c


async def seed(db: Database, rows: list[tuple[str, str, str, int]]) -> list[uuid.UUID]:
    """(email, name, status, minutes after T0) → ids, in that order."""
    ids = [uuid.uuid4() for _ in rows]
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO subscriptions (id, email, name, status, created_at)"
            " VALUES ($1, $2, $3, $4, $5)",
            [
                (i, email, name, status, T0 + timedelta(minutes=minutes))
                for i, (email, name, status, minutes) in zip(ids, rows, strict=True)
            ],
        )
    return ids


async def walk(client: httpx.AsyncClient, keys: Keys, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, page after page."""
    items: list[dict[str, Any]] = []
    cursor = None
    for _ in range(100):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        page = await client.get(URL, params=query, headers=keys.editor_read)
        assert page.status_code == 200, page.text
        body = page.json()
        items.extend(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return items
    raise AssertionError("the pages never ended")


async def test_pages_walk_every_subscriber_once_in_order(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    ids = await seed(db, [(f"r{n}@example.com", f"Reader {n}", "confirmed", n) for n in range(7)])
    newest = await walk(client, keys, limit=3)
    assert [item["id"] for item in newest] == [str(i) for i in reversed(ids)]
    oldest = await walk(client, keys, limit=2, order="oldest")
    assert [item["id"] for item in oldest] == [str(i) for i in ids]
    first = (await client.get(URL, params={"limit": 7}, headers=keys.editor_read)).json()
    assert first["next_cursor"] is None
    assert set(first["items"][0]) == {"id", "email", "name", "status", "created_at", "confirmed_at"}


async def test_filters_status_window_and_search(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    await seed(
        db,
        [
            ("alice@example.com", "Alice Liddell", "confirmed", 0),
            ("bob@example.org", "Bob", "pending_confirmation", 10),
            ("carol@example.com", "Carol Alison", "unsubscribed", 20),
            ("dave@sample.net", "Dave", "confirmed", 30),
        ],
    )

    async def emails(**params: Any) -> list[str]:
        return [item["email"] for item in await walk(client, keys, limit=1, **params)]

    assert await emails(status="confirmed") == ["dave@sample.net", "alice@example.com"]
    # Contains, on the email or the name, any case; short texts too.
    assert await emails(search="ALI") == ["carol@example.com", "alice@example.com"]
    assert await emails(search="example.org") == ["bob@example.org"]
    assert await emails(search="ve") == ["dave@sample.net"]
    assert await emails(search="100%_") == []
    assert await emails(search="ali", status="unsubscribed") == ["carol@example.com"]
    # created_after / created_before: strictly between, either order.
    after = (T0 + timedelta(minutes=5)).isoformat()
    before = (T0 + timedelta(minutes=30)).isoformat()
    window = {"created_after": after, "created_before": before}
    assert await emails(**window) == ["carol@example.com", "bob@example.org"]
    assert await emails(order="oldest", **window) == ["bob@example.org", "carol@example.com"]
    assert await emails(created_before=T0.isoformat()) == []


async def test_the_contract_search_finds_by_email_or_name(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    await seed(db, [("zed@example.com", "Zoë Quinn", "confirmed", 0)])
    for text in ("zed@ex", "quinn"):
        found = await client.get(URL, params={"search": text}, headers=keys.admin_write)
        assert [item["email"] for item in found.json()["items"]] == ["zed@example.com"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"cursor": "forged.cursor"}, "cursor"),
        ({"limit": 201}, "limit"),
        ({"limit": 0}, "limit"),
        ({"status": "everyone"}, "status"),
        ({"created_after": "2026-01-01T00:00:00"}, "created_after"),
        ({"created_before": "yesterday"}, "created_before"),
        ({"created_after": "9999-12-31T23:00:00-05:00", "order": "oldest"}, "created_after"),
        ({"created_before": "0001-01-01T00:30:00+05:00"}, "created_before"),
        ({"search": "a\x00b"}, "search"),
        ({"order": "random"}, "order"),
    ],
)
async def test_bad_list_parameters_are_400s_naming_them(
    client: httpx.AsyncClient, keys: Keys, params: dict[str, Any], field: str
) -> None:
    response = await client.get(URL, params=params, headers=keys.editor_read)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_a_cursor_of_another_order_is_refused(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    await seed(db, [(f"r{n}@example.com", "R", "confirmed", n) for n in range(3)])
    page = (await client.get(URL, params={"limit": 1}, headers=keys.editor_read)).json()
    other = await client.get(
        URL, params={"cursor": page["next_cursor"], "order": "oldest"}, headers=keys.editor_read
    )
    assert other.status_code == 400


async def test_create_is_double_opt_in_and_409_for_a_known_address(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    created = await client.post(
        URL,
        json={"email": "New.Reader@Example.com", "name": "New Reader"},
        headers=keys.editor_write,
    )
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "pending_confirmation"
    assert body["confirmed_at"] is None
    assert created.headers["location"] == f"{URL}/{body['id']}"
    async with db.connection() as conn:
        emails = await conn.fetchval(
            "SELECT count(*) FROM deliveries WHERE subscriber_id = $1 AND kind = 'confirmation'",
            uuid.UUID(body["id"]),
        )
    assert emails == 1
    again = await client.post(
        URL, json={"email": "new.reader@example.com", "name": "Someone"}, headers=keys.editor_write
    )
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"


async def test_create_refuses_bad_input_naming_the_field(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    for payload, field in (
        ({"email": "not-an-address", "name": "X"}, "email"),
        ({"email": "a@example.com", "name": "  "}, "name"),
        ({"email": "a@example.com"}, "name"),
        ({"email": "a@example.com", "name": "A", "status": "confirmed"}, "status"),
    ):
        response = await client.post(URL, json=payload, headers=keys.editor_write)
        assert response.status_code == 400, (payload, response.text)
        assert field in [e["field"] for e in response.json()["errors"]], response.json()


async def test_create_with_an_idempotency_key_happens_once(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    headers = {**keys.editor_write, "Idempotency-Key": str(uuid.uuid4())}
    payload = {"email": "once@example.com", "name": "Once"}
    first = await client.post(URL, json=payload, headers=headers)
    second = await client.post(URL, json=payload, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second.headers["location"] == first.headers["location"]
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM deliveries") == 1


async def test_get_rename_and_unsubscribe(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    (one,) = await seed(db, [("one@example.com", "One", "confirmed", 0)])
    got = await client.get(f"{URL}/{one}", headers=keys.editor_read)
    assert got.json()["email"] == "one@example.com"
    renamed = await client.patch(f"{URL}/{one}", json={"name": " Uno "}, headers=keys.editor_write)
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Uno"
    assert (
        await client.patch(f"{URL}/{one}", json={"name": ""}, headers=keys.editor_write)
    ).status_code == 400
    for _ in range(2):  # idempotent
        gone = await client.delete(f"{URL}/{one}", headers=keys.editor_write)
        assert gone.status_code == 200
        assert gone.json()["status"] == "unsubscribed"
    missing = uuid.uuid4()
    for response in (
        await client.get(f"{URL}/{missing}", headers=keys.editor_read),
        await client.patch(f"{URL}/{missing}", json={"name": "X"}, headers=keys.editor_write),
        await client.delete(f"{URL}/{missing}", headers=keys.editor_write),
    ):
        assert response.status_code == 404, response.text
    bad = await client.get(f"{URL}/not-an-id", headers=keys.editor_read)
    assert bad.status_code == 400
