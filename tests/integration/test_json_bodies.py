"""Malformed or pathological JSON bodies are a 400 naming the problem, never a 500, on every
route that reads JSON (issue 8 item 9): POST /subscriptions and the JSON API."""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

from herald.core.config import Settings
from herald.core.db import Database
from tests.support.auth import bearer, request_token
from tests.support.newsletters import PASSWORD, create_admin

JSON = {"Content-Type": "application/json", "Accept": "application/json"}
EMAIL = '"email": "ursula@example.com"'

# (body, words the message must contain)
PATHOLOGICAL: list[tuple[bytes, str]] = [
    # 60,000 '[' fit under the 64 KiB limit and used to raise RecursionError (a 500).
    (b"[" * 60_000, "nested too deeply"),
    (b"[" * 30_000 + b"]" * 30_000, "nested too deeply"),
    (
        b'{"name": ' + b'{"a": ' * 8_000 + b"1" + b"}" * 8_000 + b", " + EMAIL.encode() + b"}",
        "nested too deeply",
    ),
    (b'{"name": ' + b"9" * 5_000 + b", " + EMAIL.encode() + b"}", "number"),
    (b'{"name": 1e999999, ' + EMAIL.encode() + b"}", "number"),
    (b'{"name": NaN, ' + EMAIL.encode() + b"}", "not valid JSON"),
    (b'{"name": "Ursula\xff", ' + EMAIL.encode() + b"}", "UTF-8"),
    ('{"name": "Ursula", "email": "u@example.com"}'.encode("utf-16"), "UTF-8"),
    (b'{"name": "a", "name": "b", ' + EMAIL.encode() + b"}", "'name' more than once"),
    (b'{"name": "Ursula", ' + EMAIL.encode(), "not valid JSON"),
    (b"", "empty"),
    (b"[]", "must be an object"),
    (b'"Ursula"', "must be an object"),
    (b"null", "must be an object"),
    (b'{"name": ["Ursula"], ' + EMAIL.encode() + b"}", "name must be a string"),
    (b'{"name": "Ursula", "email": {"address": "u@example.com"}}', "email must be a string"),
    (b'{"name": "Ursula\\u0000", ' + EMAIL.encode() + b"}", "NUL character"),
    (b'{"name": "Ursula", "email": "u\\u0000@example.com"}', "NUL character"),
    (b'{"name": "Ursula", "email": "\\ud800@example.com"}', "lone surrogate"),
]


@pytest.mark.parametrize(("body", "says"), PATHOLOGICAL)
async def test_a_pathological_json_subscription_is_a_400_with_a_message(
    client: httpx.AsyncClient, db: Database, body: bytes, says: str
) -> None:
    assert len(body) <= 64 * 1024
    with capture_logs() as logs:
        response = await client.post("/subscriptions", content=body, headers=JSON)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"
    assert says in response.json()["message"]
    assert not [entry for entry in logs if entry["log_level"] == "error"]
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM subscriptions") == 0


async def test_deep_nesting_is_a_400_whatever_the_client_accepts(
    client: httpx.AsyncClient,
) -> None:
    # A JSON body without an Accept preference gets a JSON error (web/negotiate.py).
    for accept, content_type in (("text/html", "text/html"), ("*/*", "application/json")):
        response = await client.post(
            "/subscriptions",
            content=b"[" * 60_000,
            headers={"Content-Type": "application/json", "Accept": accept},
        )
        assert response.status_code == 400
        assert response.headers["content-type"].startswith(content_type)
        assert "nested too deeply" in response.text


async def test_a_json_subscription_still_works(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/subscriptions",
        content=b'{"name": "Ursula Le Guin", "email": "ursula@example.com"}',
        headers=JSON,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "pending_confirmation"


# -- the JSON API ---------------------------------------------------------------------


@pytest.fixture
async def token(client: httpx.AsyncClient, db: Database, settings: Settings) -> str:
    await create_admin(db, settings)
    response = await request_token(client, "admin", PASSWORD)
    assert response.status_code == 200, response.text
    access: str = response.json()["access_token"]
    return access


API_PATHOLOGICAL: list[tuple[bytes, str]] = [
    (b"[" * 60_000, "nested too deeply"),
    (b'{"name": ' + b"[" * 30_000 + b"]" * 30_000 + b"}", "nested too deeply"),
    (b'{"name": "a", "name": "b"}', "'name' more than once"),
    (b'{"name": "key\xff"}', "UTF-8"),
    (b'{"name": ' + b"9" * 5_000 + b"}", "number"),
    (b'{"name": Infinity}', "not valid JSON"),
    (b'{"name": "key"', "not valid JSON"),
    (b"[]", "request"),
    (b'{"name": ["key"]}', "name"),
    (b'{"name": "key\\ud800"}', "lone surrogate"),
    (b'{"name": "key\\u0000"}', "NUL"),
]


@pytest.mark.parametrize(("body", "says"), API_PATHOLOGICAL)
async def test_a_pathological_api_body_is_a_400_with_a_message(
    client: httpx.AsyncClient, token: str, body: bytes, says: str
) -> None:
    with capture_logs() as logs:
        response = await client.post(
            "/api/v1/api-keys", content=body, headers={**JSON, **bearer(token)}
        )
    assert response.status_code == 400, response.text
    assert says in response.json()["message"]
    assert not [entry for entry in logs if entry["log_level"] == "error"]
    keys = await client.get("/api/v1/api-keys", headers=bearer(token))
    assert keys.json() == {"api_keys": []}


async def test_a_well_formed_api_body_still_creates_a_key(
    client: httpx.AsyncClient, token: str
) -> None:
    response = await client.post(
        "/api/v1/api-keys",
        content=b'{"name": "ci", "scope": "read"}',
        headers={**JSON, **bearer(token)},
    )
    assert response.status_code == 201, response.text
    assert response.json()["key"].startswith("hrld_")
