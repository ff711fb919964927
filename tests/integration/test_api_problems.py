"""Every error under /api/v1 is an RFC 9457 problem document (application/problem+json),
made by web/errors.py whatever raised it: the router, a dependency, a handler, the body
limit or a bug."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import APIRouter

from herald.api.access import Access, operation
from herald.api.idempotency import ApiRoute
from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import RateLimited
from tests.support.api import Keys, api_client, make_keys, new_app

PROBLEM = "application/problem+json"


@pytest.fixture
async def keys(db: Database, settings: Settings) -> Keys:
    return await make_keys(db, settings)


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = new_app(settings, db)
    router = APIRouter(prefix="/api/v1", route_class=ApiRoute)

    @router.get("/test-bug", **operation(Access.READ))
    async def bug() -> None:
        raise RuntimeError("secret internals: postgresql://user:pw@db/herald")

    @router.get("/test-throttled", **operation(Access.READ))
    async def throttled() -> None:
        raise RateLimited("slow down", retry_after=12)

    app.include_router(router)
    async with api_client(app, raise_app_exceptions=False) as c:
        yield c


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM), response.headers
    body: dict[str, Any] = response.json()
    assert body["type"] == "about:blank"
    assert body["status"] == status
    assert body["title"]
    assert body["detail"]
    assert body["detail"] == body["message"]
    assert body["instance"] == response.request.url.path
    assert body["error"] == code
    return body


async def test_401_without_or_with_a_bad_credential(client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer hrld_nonsense"}, {"Authorization": "Basic x"}):
        response = await client.get("/api/v1/me", headers=headers)
        body = assert_problem(response, 401, "unauthorized")
        assert body["title"] == "Unauthorized"
        assert response.headers["www-authenticate"].startswith("Bearer")


async def test_403_for_a_read_only_key_on_a_write_route(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.post("/api/v1/api-keys", json={"name": "x"}, headers=keys.admin_read)
    assert "write scope" in assert_problem(response, 403, "forbidden")["detail"]
    editor = await client.get("/api/v1/api-keys", headers=keys.editor_write)
    assert_problem(editor, 403, "forbidden")


async def test_404_and_405_from_the_router(client: httpx.AsyncClient, keys: Keys) -> None:
    assert_problem(
        await client.get("/api/v1/nothing-here", headers=keys.admin_read), 404, "not_found"
    )
    assert_problem(await client.get("/api/v1"), 404, "not_found")
    wrong = await client.delete("/api/v1/me", headers=keys.admin_write)
    assert_problem(wrong, 405, "method_not_allowed")
    assert "GET" in wrong.headers["allow"]


async def test_400_names_the_fields_at_fault(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(
        "/api/v1/api-keys", json={"name": "", "scope": "everything"}, headers=keys.admin_write
    )
    body = assert_problem(response, 400, "invalid_request")
    assert {e["field"] for e in body["errors"]} == {"name", "scope"}
    malformed = await client.post(
        "/api/v1/api-keys",
        content=b'{"name": "a", "name": "b"}',
        headers={**keys.admin_write, "Content-Type": "application/json"},
    )
    assert "more than once" in assert_problem(malformed, 400, "invalid_request")["detail"]
    bad_id = await client.delete("/api/v1/api-keys/not-a-uuid", headers=keys.admin_write)
    assert assert_problem(bad_id, 400, "invalid_request")["errors"][0]["field"] == "key_id"


async def test_413_from_the_body_limit(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.post(
        "/api/v1/api-keys",
        content=b'{"name": "' + b"x" * 70_000 + b'"}',
        headers={**keys.admin_write, "Content-Type": "application/json"},
    )
    assert_problem(response, 413, "payload_too_large")


async def test_415_for_a_body_the_route_does_not_read(client: httpx.AsyncClient) -> None:
    response = await client.post("/api/v1/auth/token", json={"username": "a", "password": "b"})
    assert_problem(response, 415, "unsupported_media_type")


async def test_429_carries_retry_after(client: httpx.AsyncClient, keys: Keys) -> None:
    response = await client.get("/api/v1/test-throttled", headers=keys.admin_read)
    assert_problem(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "12"


async def test_a_bug_is_a_500_problem_that_leaks_nothing(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    response = await client.get("/api/v1/test-bug", headers=keys.admin_read)
    body = assert_problem(response, 500, "internal_error")
    assert "postgresql" not in response.text
    assert "secret" not in response.text
    assert response.headers["x-request-id"] in body["detail"]
