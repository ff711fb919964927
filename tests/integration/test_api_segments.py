"""/api/v1/segments (CRUD, preview, a segment's subscribers) and subscribers' attributes
(GET shows them, PATCH merges them) — hostile input included."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.segments import service
from tests.support.api import Keys, api_client, make_keys, new_app

URL = "/api/v1/segments"
SUBSCRIBERS = "/api/v1/subscribers"
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
PARIS = {"attribute": "city", "op": "eq", "type": "string", "value": "Paris"}


@pytest.fixture
async def keys(db: Database, settings: Settings) -> Keys:
    return await make_keys(db, settings)


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(new_app(settings, db)) as c:
        yield c


async def seed(db: Database, rows: list[tuple[str, str, dict[str, Any]]]) -> list[uuid.UUID]:
    """(email, status, attributes) → ids, one minute apart from T0."""
    ids = [uuid.uuid4() for _ in rows]
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO subscriptions (id, email, name, status, created_at, attributes)"
            " VALUES ($1, $2, 'R', $3, $4, $5::jsonb)",
            [
                (i, email, status, T0 + timedelta(minutes=n), json.dumps(attrs))
                for n, (i, (email, status, attrs)) in enumerate(zip(ids, rows, strict=True))
            ],
        )
    return ids


async def test_create_get_list_update_and_delete(client: httpx.AsyncClient, keys: Keys) -> None:
    body = {"name": " Parisians ", "filter": {"all": [PARIS, {"status": "confirmed"}]}}
    created = await client.post(URL, json=body, headers=keys.editor_write)
    assert created.status_code == 201, created.text
    segment = created.json()
    assert segment["name"] == "Parisians"
    assert segment["filter"] == {"all": [PARIS, {"status": ["confirmed"]}]}
    assert created.headers["location"] == f"{URL}/{segment['id']}"
    got = await client.get(f"{URL}/{segment['id']}", headers=keys.editor_read)
    assert got.json() == segment

    taken = await client.post(URL, json=body, headers=keys.editor_write)
    assert taken.status_code == 409
    assert taken.headers["content-type"] == "application/problem+json"

    for n in range(3):
        await client.post(URL, json={"name": f"S{n}", "filter": PARIS}, headers=keys.editor_write)
    seen, cursor = [], None
    for _ in range(5):
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await client.get(URL, params=params, headers=keys.editor_read)).json()
        seen += [item["name"] for item in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["Parisians", "S0", "S1", "S2"]

    renamed = await client.patch(
        f"{URL}/{segment['id']}", json={"name": "Lyon"}, headers=keys.editor_write
    )
    assert renamed.json()["filter"] == segment["filter"]
    changed = await client.patch(
        f"{URL}/{segment['id']}",
        json={"filter": {"email_domain": "x.org"}},
        headers=keys.editor_write,
    )
    assert changed.json() | {"updated_at": None} == {
        **segment,
        "name": "Lyon",
        "filter": {"email_domain": "x.org"},
        "updated_at": None,
    }
    assert (
        await client.delete(f"{URL}/{segment['id']}", headers=keys.editor_write)
    ).status_code == 204
    assert (await client.get(f"{URL}/{segment['id']}", headers=keys.editor_read)).status_code == 404
    assert (
        await client.delete(f"{URL}/{segment['id']}", headers=keys.editor_write)
    ).status_code == 404


@pytest.mark.parametrize(
    ("body", "field_text"),
    [
        ({"name": "x", "filter": {"sql": "1=1"}}, "unknown condition"),
        ({"name": "x", "filter": {**PARIS, "op": "like"}}, "filter.op"),
        ({"name": "x", "filter": {"list": "no-such-list"}}, "there is no list"),
        ({"name": "", "filter": PARIS}, "name"),
        ({"name": "x" * 101, "filter": PARIS}, "name"),
        ({"name": "x", "filter": PARIS, "extra": 1}, "extra"),
        ({"name": "x", "filter": []}, "filter"),
    ],
)
async def test_bad_segments_are_400_naming_the_problem(
    client: httpx.AsyncClient, keys: Keys, body: dict[str, Any], field_text: str
) -> None:
    response = await client.post(URL, json=body, headers=keys.editor_write)
    assert response.status_code == 400, response.text
    assert field_text in response.text


async def test_ten_thousand_levels_of_nesting_are_a_400(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    deep = '{"not":' * 10_000 + '{"status":"confirmed"}' + "}" * 10_000
    body = '{"name": "deep", "filter": ' + deep + "}"
    response = await client.post(
        URL, content=body, headers={**keys.editor_write, "Content-Type": "application/json"}
    )
    assert response.status_code in (400, 413), response.text
    shallow = '{"not":' * 6 + '{"status":"confirmed"}' + "}" * 6
    response = await client.post(
        URL,
        content='{"name": "d", "filter": ' + shallow + "}",
        headers={**keys.editor_write, "Content-Type": "application/json"},
    )
    assert response.status_code == 400
    assert "nested too deeply" in response.text


async def test_a_segment_targeted_by_an_issue_cannot_be_deleted(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    created = await client.post(
        URL, json={"name": "Used", "filter": PARIS}, headers=keys.editor_write
    )
    segment_id = created.json()["id"]
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO newsletter_issues (id, title, text_content, html_content, status,"
            " segment_id) VALUES ($1, 'T', 't', '<p>t</p>', 'draft', $2)",
            uuid.uuid4(),
            uuid.UUID(segment_id),
        )
    refused = await client.delete(f"{URL}/{segment_id}", headers=keys.editor_write)
    assert refused.status_code == 409
    assert "1 issue (1 not sent yet)" in refused.json()["detail"]


async def test_preview_and_the_segments_subscribers(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    ids = await seed(
        db,
        [
            ("a@example.com", "confirmed", {"city": "Paris", "age": 30}),
            ("b@example.com", "confirmed", {"city": "Lyon", "age": "thirty"}),
            ("c@example.com", "pending_confirmation", {"city": "Paris"}),
            ("d@example.com", "confirmed", {"city": "Paris", "age": 45.5}),
            ("e@example.com", "confirmed", {}),
        ],
    )
    older = {"attribute": "age", "op": "gte", "type": "number", "value": 30}
    preview = await client.post(
        f"{URL}/preview", json={"filter": {"all": [PARIS, older]}}, headers=keys.editor_read
    )
    assert preview.status_code == 200, preview.text
    assert preview.json()["count"] == 2
    assert [m["email"] for m in preview.json()["sample"]] == ["d@example.com", "a@example.com"]
    not_older = await client.post(
        f"{URL}/preview", json={"filter": {"not": older}}, headers=keys.editor_read
    )
    assert not_older.json()["count"] == 3  # "thirty" is not a number: not ≥ 30, no error

    created = await client.post(
        URL, json={"name": "Paris", "filter": PARIS}, headers=keys.editor_write
    )
    segment_id = created.json()["id"]
    emails, cursor = [], None
    for _ in range(5):
        params = {"limit": 1, **({"cursor": cursor} if cursor else {})}
        page = await client.get(
            f"{URL}/{segment_id}/subscribers", params=params, headers=keys.editor_read
        )
        assert page.status_code == 200, page.text
        emails += [item["email"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert emails == ["d@example.com", "c@example.com", "a@example.com"]
    assert page.json()["items"][0]["attributes"] == {"city": "Paris", "age": 30}
    foreign = await client.get(
        f"{URL}/{segment_id}/subscribers", params={"cursor": "garbage"}, headers=keys.editor_read
    )
    assert foreign.status_code == 400
    assert ids


async def test_attributes_are_shown_and_merged(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    (one,) = await seed(db, [("one@example.com", "confirmed", {"city": "Paris", "old": 1})])
    got = await client.get(f"{SUBSCRIBERS}/{one}", headers=keys.editor_read)
    assert got.json()["attributes"] == {"city": "Paris", "old": 1}
    merged = await client.patch(
        f"{SUBSCRIBERS}/{one}",
        json={"attributes": {"city": "Lyon", "old": None, "tags": ["a"], "nested": {"x": 1}}},
        headers=keys.editor_write,
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["attributes"] == {"city": "Lyon", "tags": ["a"], "nested": {"x": 1}}
    both = await client.patch(
        f"{SUBSCRIBERS}/{one}",
        json={"name": "Uno", "attributes": {"vip": True}},
        headers=keys.editor_write,
    )
    assert both.json()["name"] == "Uno"
    assert both.json()["attributes"]["vip"] is True
    missing = await client.patch(
        f"{SUBSCRIBERS}/{uuid.uuid4()}", json={"attributes": {"a": 1}}, headers=keys.editor_write
    )
    assert missing.status_code == 404


@pytest.mark.parametrize(
    ("attributes", "message"),
    [
        ({"1bad": 1}, "not an attribute name"),
        ({"a-b": 1}, "not an attribute name"),
        ({"x" * 65: 1}, "not an attribute name"),
        ({"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}, "nested more than 5"),
        ({"a": [[[[[1]]]]]}, "nested more than 5"),
        ({"a": "x" * 17_000}, "16 KiB"),
        ({"a": {"bad key": 1}}, "not an attribute name"),
    ],
)
async def test_bad_attributes_are_400(
    client: httpx.AsyncClient, keys: Keys, db: Database, attributes: Any, message: str
) -> None:
    (one,) = await seed(db, [("one@example.com", "confirmed", {})])
    response = await client.patch(
        f"{SUBSCRIBERS}/{one}", json={"attributes": attributes}, headers=keys.editor_write
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]


@pytest.mark.parametrize(
    ("stored", "attributes", "message"),
    [
        ({}, {"1bad": 1}, "not an attribute name"),
        ({"a": "x" * 10_000}, {"b": "y" * 10_000}, "16 KiB"),  # too large only once merged
    ],
)
async def test_a_refused_attribute_change_leaves_the_name_too(
    client: httpx.AsyncClient,
    keys: Keys,
    db: Database,
    stored: dict[str, Any],
    attributes: dict[str, Any],
    message: str,
) -> None:
    (one,) = await seed(db, [("one@example.com", "confirmed", stored)])
    response = await client.patch(
        f"{SUBSCRIBERS}/{one}",
        json={"name": "Uno", "attributes": attributes},
        headers=keys.editor_write,
    )
    assert response.status_code == 400, response.text
    assert message in response.json()["detail"]
    got = (await client.get(f"{SUBSCRIBERS}/{one}", headers=keys.editor_read)).json()
    assert (got["name"], got["attributes"]) == ("R", stored)


async def test_merges_that_race_lose_nothing(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    (one,) = await seed(db, [("one@example.com", "confirmed", {})])
    responses = await asyncio.gather(
        *(
            client.patch(
                f"{SUBSCRIBERS}/{one}", json={"attributes": {f"k{n}": n}}, headers=keys.editor_write
            )
            for n in range(10)
        )
    )
    assert {r.status_code for r in responses} == {200}
    got = await client.get(f"{SUBSCRIBERS}/{one}", headers=keys.editor_read)
    assert got.json()["attributes"] == {f"k{n}": n for n in range(10)}


async def test_a_read_key_cannot_write(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(URL, json={"name": "x", "filter": PARIS}, headers=keys.editor_read)
    assert response.status_code == 403


async def test_the_subscriber_list_filters_by_segment(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    await seed(
        db,
        [
            ("a@example.com", "confirmed", {"city": "Paris"}),
            ("b@example.com", "pending_confirmation", {"city": "Paris"}),
            ("c@example.com", "confirmed", {"city": "Lyon"}),
            ("d@example.com", "confirmed", {"city": "Paris"}),
        ],
    )
    created = await client.post(
        URL, json={"name": "Paris", "filter": PARIS}, headers=keys.editor_write
    )
    segment = created.json()["id"]
    emails, cursor = [], None
    for _ in range(5):
        params = {"segment": segment, "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await client.get(SUBSCRIBERS, params=params, headers=keys.editor_read)
        assert page.status_code == 200, page.text
        emails += [item["email"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert emails == ["d@example.com", "b@example.com", "a@example.com"]
    confirmed = await client.get(
        SUBSCRIBERS, params={"segment": segment, "status": "confirmed"}, headers=keys.editor_read
    )
    assert [i["email"] for i in confirmed.json()["items"]] == ["d@example.com", "a@example.com"]
    assert "attributes" not in confirmed.json()["items"][0]
    mixed = await client.get(
        SUBSCRIBERS, params={"segment": segment, "search": "a"}, headers=keys.editor_read
    )
    assert mixed.status_code == 400
    assert "segment" in mixed.text
    unknown = await client.get(
        SUBSCRIBERS, params={"segment": str(uuid.uuid4())}, headers=keys.editor_read
    )
    assert unknown.status_code == 404


async def test_a_count_that_takes_too_long_is_cut_short_and_said(
    client: httpx.AsyncClient,
    keys: Keys,
    db: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "TIMEOUT", "300ms")
    blocker = await asyncpg.connect(database_url)
    try:
        transaction = blocker.transaction()
        await transaction.start()
        # A statement that waits for a lock counts against the timeout like a slow one.
        await blocker.execute("LOCK TABLE subscriptions IN ACCESS EXCLUSIVE MODE")
        preview = await client.post(
            f"{URL}/preview", json={"filter": PARIS}, headers=keys.editor_read
        )
        await transaction.rollback()
    finally:
        await blocker.close()
    assert preview.status_code == 200, preview.text
    assert preview.json() == {"count": None, "sample": None}


async def test_racing_creates_of_one_name_make_one_segment(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    body = {"name": "Race", "filter": PARIS}
    responses = await asyncio.gather(
        *(client.post(URL, json=body, headers=keys.editor_write) for _ in range(8))
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM segments") == 1


async def test_a_repeated_create_with_its_idempotency_key_replays(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    headers = {**keys.editor_write, "Idempotency-Key": "seg-1"}
    body = {"name": "Once", "filter": PARIS}
    first = await client.post(URL, json=body, headers=headers)
    again = await client.post(URL, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    other = await client.post(URL, json={**body, "name": "Twice"}, headers=headers)
    assert other.status_code == 422
    listed = await client.get(URL, headers=keys.editor_read)
    assert [s["name"] for s in listed.json()["items"]] == ["Once"]
