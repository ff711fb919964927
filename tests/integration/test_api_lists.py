"""/api/v1/lists: keyset pages, create (Idempotency-Key), get, change, delete; a list's
members (keyset by subscriber id, by status), add and remove — through lists.service."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from tests.support.api import Keys, api_client, make_keys, new_app
from tests.support.newsletters import add_subscribers

URL = "/api/v1/lists"
PROBLEM = "application/problem+json"


@pytest.fixture
async def keys(db: Database, settings: Settings) -> Keys:
    return await make_keys(db, settings)


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(new_app(settings, db)) as c:
        yield c


async def _create(client: httpx.AsyncClient, keys: Keys, **body: Any) -> dict[str, Any]:
    response = await client.post(URL, json=body, headers=keys.editor_write)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def test_create_get_patch_and_list(client: httpx.AsyncClient, keys: Keys) -> None:
    created = await _create(client, keys, name="Weekly Digest", description="Every Monday.")
    assert created["slug"] == "weekly-digest"
    assert (created["visibility"], created["opt_in"], created["is_default"]) == (
        "public",
        "double",
        False,
    )
    assert created["members"] == {"pending_confirmation": 0, "confirmed": 0, "unsubscribed": 0}
    one = await client.get(f"{URL}/{created['id']}", headers=keys.editor_read)
    assert one.json() == created
    patched = await client.patch(
        f"{URL}/{created['id']}",
        json={"visibility": "private", "name": "  Digest  "},
        headers=keys.editor_write,
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["visibility"]) == ("Digest", "private")
    assert patched.json()["slug"] == "weekly-digest"
    for n in range(4):
        await _create(client, keys, name=f"List {n}")
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = await client.get(URL, params=params, headers=keys.editor_read)
        assert page.status_code == 200, page.text
        seen += [item["slug"] for item in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if cursor is None:
            break
    assert seen == ["default", "weekly-digest", "list-0", "list-1", "list-2", "list-3"]
    bad = await client.get(URL, params={"cursor": "nonsense"}, headers=keys.editor_read)
    assert bad.status_code == 400
    assert bad.json()["errors"][0]["field"] == "cursor"


async def test_bad_input_is_a_400_naming_the_field(client: httpx.AsyncClient, keys: Keys) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "A", "slug": "Not A Slug"}, "slug"),
        ({"name": "A", "slug": "a" * 61}, "slug"),
        ({"name": ""}, "name"),
        ({"name": "x" * 1000}, "name"),
        ({"name": "A", "description": "d" * 1001}, "description"),
        ({"name": "A", "description": "d" * 100_000}, "description"),
        ({"name": "A", "visibility": "secret"}, "visibility"),
        ({"name": "A", "opt_in": "triple"}, "opt_in"),
        ({"name": "A", "colour": "red"}, "colour"),
        ({"name": "!!!"}, "slug"),
        ({"name": "A\u0007B"}, "name"),
    ]
    for body, field in cases:
        response = await client.post(URL, json=body, headers=keys.editor_write)
        assert response.status_code in (400, 413), (body, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        if response.status_code == 400:
            fields = [e["field"] for e in response.json().get("errors", [])]
            assert field in fields, (body, response.json())
    listed = await client.get(URL, headers=keys.editor_read)
    assert [item["slug"] for item in listed.json()["items"]] == ["default"]


async def test_slugs_are_unique_also_under_concurrency(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    responses = await asyncio.gather(
        *(
            client.post(URL, json={"name": f"N{n}", "slug": "race"}, headers=keys.editor_write)
            for n in range(6)
        )
    )
    assert sorted(r.status_code for r in responses) == [201] + [409] * 5
    other = await _create(client, keys, name="Other")
    taken = await client.patch(
        f"{URL}/{other['id']}", json={"slug": "race"}, headers=keys.editor_write
    )
    assert taken.status_code == 409
    assert "race" in taken.json()["detail"]


async def test_the_default_list(client: httpx.AsyncClient, keys: Keys) -> None:
    listed = await client.get(URL, headers=keys.editor_read)
    (default,) = listed.json()["items"]
    assert default["is_default"]
    moved = await client.patch(
        f"{URL}/{default['id']}", json={"slug": "main"}, headers=keys.editor_write
    )
    assert moved.status_code == 400
    assert moved.json()["errors"][0]["field"] == "slug"
    same = await client.patch(
        f"{URL}/{default['id']}",
        json={"slug": "default", "name": "News"},
        headers=keys.editor_write,
    )
    assert same.status_code == 200
    single = await client.patch(
        f"{URL}/{default['id']}", json={"opt_in": "single"}, headers=keys.editor_write
    )
    assert single.status_code == 400
    assert single.json()["errors"][0]["field"] == "opt_in"
    gone = await client.delete(f"{URL}/{default['id']}", headers=keys.editor_write)
    assert gone.status_code == 409
    assert gone.headers["content-type"].startswith(PROBLEM)


async def test_delete(client: httpx.AsyncClient, keys: Keys, db: Database) -> None:
    doomed = await _create(client, keys, name="Doomed")
    (reader,) = await add_subscribers(db, 1)
    added = await client.post(
        f"{URL}/{doomed['id']}/members",
        json={"subscriber_id": str(reader), "status": "confirmed"},
        headers=keys.editor_write,
    )
    assert added.status_code == 200
    targeted = await _create(client, keys, name="Targeted")
    async with db.connection() as conn:
        issue = await conn.fetchval(
            "INSERT INTO newsletter_issues (id, title, text_content, html_content)"
            " VALUES (gen_random_uuid(), 'Hi', 'x', '<p>x</p>') RETURNING id"
        )
        await conn.execute(
            "INSERT INTO issue_lists (issue_id, list_id) VALUES ($1, $2)", issue, targeted["id"]
        )
    refused = await client.delete(f"{URL}/{targeted['id']}", headers=keys.editor_write)
    assert refused.status_code == 409
    assert "'Hi'" in refused.json()["detail"]
    deleted = await client.delete(f"{URL}/{doomed['id']}", headers=keys.editor_write)
    assert deleted.status_code == 200
    assert deleted.json()["members"]["confirmed"] == 1
    assert (await client.get(f"{URL}/{doomed['id']}", headers=keys.editor_read)).status_code == 404
    again = await client.delete(f"{URL}/{doomed['id']}", headers=keys.editor_write)
    assert again.status_code == 404
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM subscriptions") == 1


async def test_members_add_page_filter_and_remove(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    lst = await _create(client, keys, name="Letters")
    members = f"{URL}/{lst['id']}/members"
    readers = await add_subscribers(db, 7)
    for n, reader in enumerate(readers):
        status = "confirmed" if n % 2 == 0 else "pending_confirmation"
        response = await client.post(
            members,
            json={"subscriber_id": str(reader), "status": status},
            headers={**keys.admin_write, "Idempotency-Key": f"add-{n}"},
        )
        assert response.status_code == 200, response.text
        assert response.json()["source"] == "api:write key"
    replay = await client.post(
        members,
        json={"subscriber_id": str(readers[0]), "status": "confirmed"},
        headers={**keys.admin_write, "Idempotency-Key": "add-0"},
    )
    assert replay.status_code == 200
    assert replay.headers["idempotent-replayed"] == "true"
    confirm = await client.post(
        members,
        json={"subscriber_id": str(readers[1]), "status": "confirmed"},
        headers=keys.admin_write,
    )
    assert confirm.status_code == 200
    assert confirm.json()["status"] == "confirmed"
    assert confirm.json()["mailed"] is True

    async def walk(**params: Any) -> list[str]:
        ids: list[str] = []
        cursor: str | None = None
        while True:
            query = {"limit": 2, **params} | ({"cursor": cursor} if cursor else {})
            page = await client.get(members, params=query, headers=keys.editor_read)
            assert page.status_code == 200, page.text
            ids += [item["subscriber_id"] for item in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return ids

    everyone = await walk()
    assert everyone == sorted(str(r) for r in readers)
    assert len(await walk(status="confirmed")) == 5
    assert len(await walk(status="pending_confirmation")) == 2
    first = await client.get(members, params={"limit": 2}, headers=keys.editor_read)
    cursor = first.json()["next_cursor"]
    foreign = await client.get(
        members, params={"cursor": cursor, "status": "confirmed"}, headers=keys.editor_read
    )
    assert foreign.status_code == 400  # a cursor of another filter
    removed = await client.delete(f"{members}/{readers[0]}", headers=keys.editor_write)
    assert removed.status_code == 200
    assert removed.json()["status"] == "unsubscribed"
    assert removed.json()["mailed"] is False
    again = await client.delete(f"{members}/{readers[0]}", headers=keys.editor_write)
    assert again.status_code == 200
    back = await client.post(
        members,
        json={"subscriber_id": str(readers[0]), "status": "confirmed"},
        headers=keys.editor_write,
    )
    assert back.status_code == 409
    unknown = await client.post(
        members,
        json={"subscriber_id": str(uuid.uuid4()), "status": "confirmed"},
        headers=keys.editor_write,
    )
    assert unknown.status_code == 404
    odd = await client.post(
        members,
        json={"subscriber_id": str(readers[2]), "status": "unsubscribed"},
        headers=keys.editor_write,
    )
    assert odd.status_code == 400
    nowhere = await client.get(f"{URL}/{uuid.uuid4()}/members", headers=keys.editor_read)
    assert nowhere.status_code == 404
    not_member = await client.delete(
        f"{URL}/{lst['id']}/members/{uuid.uuid4()}", headers=keys.editor_write
    )
    assert not_member.status_code == 404


async def test_read_only_keys_cannot_change_lists(client: httpx.AsyncClient, keys: Keys) -> None:
    refused = await client.post(URL, json={"name": "A"}, headers=keys.admin_read)
    assert refused.status_code == 403
    assert (await client.get(URL)).status_code == 401


async def test_a_retried_create_makes_one_list(client: httpx.AsyncClient, keys: Keys) -> None:
    headers = {**keys.editor_write, "Idempotency-Key": "make-weekly"}
    first, again = [
        await client.post(URL, json={"name": "Weekly"}, headers=headers) for _ in range(2)
    ]
    assert (first.status_code, again.status_code) == (201, 201)
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    other = await client.post(URL, json={"name": "Monthly"}, headers=headers)
    assert other.status_code == 422
    listed = await client.get(URL, headers=keys.editor_read)
    assert [item["slug"] for item in listed.json()["items"]] == ["default", "weekly"]
