"""/api/v1/users: admins list, create, change roles, deactivate and activate users — with
the admin page's rules (never no active admin; a deactivated user's keys are refused)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from tests.support.api import Keys, api_client, make_keys, new_app

URL = "/api/v1/users"
PASSWORD = "Another-Pa55word-for-api"


@pytest.fixture
async def keys(db: Database, settings: Settings) -> Keys:
    return await make_keys(db, settings)


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(new_app(settings, db)) as c:
        yield c


async def test_admins_list_and_create_users(client: httpx.AsyncClient, keys: Keys) -> None:
    listed = (await client.get(URL, headers=keys.admin_read)).json()
    assert sorted((u["username"], u["role"]) for u in listed["items"]) == [
        ("admin", "admin"),
        ("editor", "editor"),
    ]
    assert listed["next_cursor"] is None
    assert not [u for u in listed["items"] if "password_hash" in u or "password" in u]
    created = await client.post(
        URL, json={"username": "writer", "password": PASSWORD}, headers=keys.admin_write
    )
    assert created.status_code == 201, created.text
    user = created.json()
    assert (user["username"], user["role"], user["active"]) == ("writer", "editor", True)
    assert created.headers["location"] == f"{URL}/{user['id']}"
    got = await client.get(f"{URL}/{user['id']}", headers=keys.admin_read)
    assert got.json() == user
    taken = await client.post(
        URL, json={"username": "Writer", "password": PASSWORD}, headers=keys.admin_write
    )
    assert taken.status_code == 409
    weak = await client.post(
        URL, json={"username": "weak", "password": "short"}, headers=keys.admin_write
    )
    assert weak.status_code == 400
    bad_role = await client.post(
        URL,
        json={"username": "x", "password": PASSWORD, "role": "owner"},
        headers=keys.admin_write,
    )
    assert bad_role.status_code == 400
    assert bad_role.json()["errors"][0]["field"] == "role"


async def test_a_created_user_with_an_idempotency_key_is_created_once(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    headers = {**keys.admin_write, "Idempotency-Key": str(uuid.uuid4())}
    body = {"username": "once", "password": PASSWORD, "role": "admin"}
    first = await client.post(URL, json=body, headers=headers)
    again = await client.post(URL, json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()


async def test_roles_and_deactivation_keep_an_active_admin(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    admin = f"{URL}/{keys.admin_id}"
    editor = f"{URL}/{keys.editor_id}"
    last = await client.put(f"{admin}/role", json={"role": "editor"}, headers=keys.admin_write)
    assert last.status_code == 409, last.text
    assert (await client.post(f"{admin}/deactivate", headers=keys.admin_write)).status_code == 409
    promoted = await client.put(f"{editor}/role", json={"role": "admin"}, headers=keys.admin_write)
    assert promoted.json()["role"] == "admin"
    demoted = await client.put(f"{editor}/role", json={"role": "editor"}, headers=keys.admin_write)
    assert demoted.json()["role"] == "editor"
    off = await client.post(f"{editor}/deactivate", headers=keys.admin_write)
    assert off.status_code == 200
    assert off.json()["active"] is False
    assert (await client.get("/api/v1/me", headers=keys.editor_read)).status_code == 401
    on = await client.post(f"{editor}/activate", headers=keys.admin_write)
    assert on.json()["active"] is True
    assert (await client.get("/api/v1/me", headers=keys.editor_read)).status_code == 200
    missing = f"{URL}/{uuid.uuid4()}"
    assert (await client.get(missing, headers=keys.admin_read)).status_code == 404
    assert (await client.post(f"{missing}/deactivate", headers=keys.admin_write)).status_code == 404
