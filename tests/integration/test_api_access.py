"""Scopes per route, table-driven over every /api/v1 operation of the app.

Every route under /api/v1 must declare its access (``api.access.operation``) and appear in
ACCESS below with that level: a new route without a declaration, or missing here, fails.
Then each is called with too little: no credential (401), a read-only key on a write
route, an editor's key on an admin route, an admin's read-only key on an admin change
(403) — and with enough, which must get past the check (whatever the operation answers
then: a 404 for a random id is fine, a 401/403 is not).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from herald.api.access import Access, declared_access
from herald.core.config import Settings
from herald.core.db import Database
from tests.support.api import Keys, api_client, make_keys, new_app

ACCESS: dict[tuple[str, str], Access] = {
    ("POST", "/api/v1/auth/token"): Access.PUBLIC,
    ("GET", "/api/v1/me"): Access.READ,
    ("GET", "/api/v1/api-keys"): Access.ADMIN,
    ("POST", "/api/v1/api-keys"): Access.ADMIN_WRITE,
    ("DELETE", "/api/v1/api-keys/{key_id}"): Access.ADMIN_WRITE,
    ("GET", "/api/v1/subscribers"): Access.READ,
    ("POST", "/api/v1/subscribers"): Access.WRITE,
    ("GET", "/api/v1/subscribers/{subscriber_id}"): Access.READ,
    ("PATCH", "/api/v1/subscribers/{subscriber_id}"): Access.WRITE,
    ("DELETE", "/api/v1/subscribers/{subscriber_id}"): Access.WRITE,
    ("POST", "/api/v1/subscribers/{subscriber_id}/erase"): Access.WRITE,
    ("GET", "/api/v1/issues"): Access.READ,
    ("POST", "/api/v1/issues"): Access.WRITE,
    ("GET", "/api/v1/issues/{issue_id}"): Access.READ,
    ("PUT", "/api/v1/issues/{issue_id}"): Access.WRITE,
    ("GET", "/api/v1/issues/{issue_id}/preview"): Access.READ,
    ("POST", "/api/v1/issues/{issue_id}/test"): Access.WRITE,
    ("POST", "/api/v1/issues/{issue_id}/publish"): Access.WRITE,
    ("POST", "/api/v1/issues/{issue_id}/schedule"): Access.WRITE,
    ("POST", "/api/v1/issues/{issue_id}/cancel"): Access.WRITE,
    ("POST", "/api/v1/issues/{issue_id}/retry-failed"): Access.WRITE,
    ("GET", "/api/v1/issues/{issue_id}/stats"): Access.READ,
    ("GET", "/api/v1/issues/{issue_id}/deliveries"): Access.READ,
    ("GET", "/api/v1/segments"): Access.READ,
    ("POST", "/api/v1/segments"): Access.WRITE,
    ("POST", "/api/v1/segments/preview"): Access.READ,
    ("GET", "/api/v1/segments/{segment_id}"): Access.READ,
    ("PATCH", "/api/v1/segments/{segment_id}"): Access.WRITE,
    ("DELETE", "/api/v1/segments/{segment_id}"): Access.WRITE,
    ("GET", "/api/v1/segments/{segment_id}/subscribers"): Access.READ,
    ("GET", "/api/v1/lists"): Access.READ,
    ("POST", "/api/v1/lists"): Access.WRITE,
    ("GET", "/api/v1/lists/{list_id}"): Access.READ,
    ("PATCH", "/api/v1/lists/{list_id}"): Access.WRITE,
    ("DELETE", "/api/v1/lists/{list_id}"): Access.WRITE,
    ("GET", "/api/v1/lists/{list_id}/members"): Access.READ,
    ("POST", "/api/v1/lists/{list_id}/members"): Access.WRITE,
    ("DELETE", "/api/v1/lists/{list_id}/members/{subscriber_id}"): Access.WRITE,
    ("POST", "/api/v1/imports"): Access.WRITE,
    ("GET", "/api/v1/imports/{import_id}"): Access.READ,
    ("GET", "/api/v1/imports/{import_id}/errors"): Access.READ,
    ("GET", "/api/v1/exports/subscribers"): Access.READ,
    ("GET", "/api/v1/suppressions"): Access.READ,
    ("POST", "/api/v1/suppressions"): Access.WRITE,
    ("DELETE", "/api/v1/suppressions/{email}"): Access.ADMIN_WRITE,
    ("GET", "/api/v1/users"): Access.ADMIN,
    ("POST", "/api/v1/users"): Access.ADMIN_WRITE,
    ("GET", "/api/v1/users/{user_id}"): Access.ADMIN,
    ("PUT", "/api/v1/users/{user_id}/role"): Access.ADMIN_WRITE,
    ("POST", "/api/v1/users/{user_id}/deactivate"): Access.ADMIN_WRITE,
    ("POST", "/api/v1/users/{user_id}/activate"): Access.ADMIN_WRITE,
    ("GET", "/api/v1/webhooks"): Access.ADMIN,
    ("POST", "/api/v1/webhooks"): Access.ADMIN_WRITE,
    ("GET", "/api/v1/webhooks/{endpoint_id}"): Access.ADMIN,
    ("PATCH", "/api/v1/webhooks/{endpoint_id}"): Access.ADMIN_WRITE,
    ("DELETE", "/api/v1/webhooks/{endpoint_id}"): Access.ADMIN_WRITE,
    ("POST", "/api/v1/webhooks/{endpoint_id}/secret"): Access.ADMIN_WRITE,
    ("GET", "/api/v1/webhooks/{endpoint_id}/messages"): Access.ADMIN,
    ("GET", "/api/v1/webhooks/{endpoint_id}/messages/{message_id}"): Access.ADMIN,
    ("POST", "/api/v1/webhooks/{endpoint_id}/messages/{message_id}/replay"): Access.ADMIN_WRITE,
    ("POST", "/api/v1/webhooks/{endpoint_id}/replay-failed"): Access.ADMIN_WRITE,
}


def declared(app: FastAPI) -> dict[tuple[str, str], Access | None]:
    """Every operation under /api/v1 (from the app's OpenAPI document, which lists each
    route of every included router) and the access it declares."""
    found: dict[tuple[str, str], Access | None] = {}
    for path, item in app.openapi()["paths"].items():
        for method, op in item.items():
            if isinstance(op, dict) and "responses" in op:
                found[(method.upper(), path)] = declared_access(op)
    return found


@pytest.fixture
def app(settings: Settings, db: Database) -> FastAPI:
    return new_app(settings, db)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(app) as c:
        yield c


def test_every_api_route_declares_its_access_and_is_in_the_table(app: FastAPI) -> None:
    routes = declared(app)
    undeclared = [key for key, access in routes.items() if access is None]
    assert not undeclared, f"routes without api.access.operation(...): {undeclared}"
    assert routes == ACCESS


def concrete(path: str) -> str:
    parts = [str(uuid.uuid4()) if p.startswith("{") else p for p in path.split("/")]
    return "/".join(parts)


async def call(
    client: httpx.AsyncClient, method: str, path: str, headers: dict[str, str]
) -> httpx.Response:
    body = {"json": {}} if method in {"POST", "PATCH", "PUT"} else {}
    return await client.request(method, concrete(path), headers=headers, **body)  # type: ignore[arg-type]


@pytest.mark.parametrize(("method", "path"), sorted(ACCESS))
async def test_each_route_refuses_too_little_and_admits_enough(
    client: httpx.AsyncClient, db: Database, settings: Settings, method: str, path: str
) -> None:
    keys: Keys = await make_keys(db, settings)
    access = ACCESS[(method, path)]
    if access is Access.PUBLIC:
        return
    anonymous = await call(client, method, path, {})
    assert anonymous.status_code == 401, anonymous.text
    too_little = {
        Access.READ: [],
        Access.WRITE: [keys.admin_read, keys.editor_read],
        Access.ADMIN: [keys.editor_read, keys.editor_write],
        Access.ADMIN_WRITE: [keys.admin_read, keys.editor_write],
    }[access]
    for headers in too_little:
        refused = await call(client, method, path, headers)
        assert refused.status_code == 403, (headers, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    enough = {
        Access.READ: [keys.editor_read],
        Access.WRITE: [keys.editor_write],
        Access.ADMIN: [keys.admin_read],
        Access.ADMIN_WRITE: [keys.admin_write],
    }[access]
    for headers in enough:
        admitted = await call(client, method, path, headers)
        assert admitted.status_code not in {401, 403}, admitted.text
