"""API authentication under /api/v1: bearer API keys and JWTs, scopes, throttled logins.

In-process (httpx over ASGITransport). ``httpx.ASGITransport`` reports the client
address it is given (``client=(host, port)``, default ``("127.0.0.1", 123)``) as
``request.client``, which is the address Herald throttles by; tests that need
several client addresses open several transports onto the same app.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest
from fastapi import FastAPI

from herald.auth.domain import Scope
from herald.auth.service import AuthService
from herald.composition.app import create_app
from herald.core.config import Settings
from herald.core.db import Database
from tests.support.auth import (
    NEW_API_KEY,
    bearer,
    csrf_token,
    fast_passwords,
    login,
    request_token,
)

PASSWORD = "Integration-Pa55word-a8e1"
NEW_PASSWORD = "Integration-Pa55word-b9f2"
CLIENT_IP = "127.0.0.1"  # what the default client below reports as request.client.host
KEY_PREFIX_LENGTH = len("hrld_") + 6


@pytest.fixture
async def app(settings: Settings, db: Database) -> AsyncIterator[FastAPI]:
    application = create_app(settings, db=db)
    async with application.router.lifespan_context(application):
        yield application


def client_at(app: FastAPI, ip: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(ip, 50123))
    return httpx.AsyncClient(transport=transport, base_url="http://herald.test")


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with client_at(app, CLIENT_IP) as c:
        yield c


@pytest.fixture
async def service(db: Database, settings: Settings) -> AsyncIterator[AuthService]:
    passwords = fast_passwords()
    try:
        yield AuthService(db, settings, passwords)
    finally:
        passwords.close()


@pytest.fixture
async def admin(service: AuthService, db: Database) -> uuid.UUID:
    user_id = await service.create_user("admin", PASSWORD)
    await remember_password_version(db, user_id)
    return user_id


async def me(client: httpx.AsyncClient, token: str) -> httpx.Response:
    return await client.get("/api/v1/me", headers=bearer(token))


def assert_bearer_401(response: httpx.Response) -> None:
    assert response.status_code == 401, response.text
    assert response.headers.get("www-authenticate", "").startswith("Bearer"), response.headers


async def issued_token(client: httpx.AsyncClient, password: str = PASSWORD) -> str:
    response = await request_token(client, "admin", password)
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


# Password version of each test user (µs since the epoch of its last password change).
PASSWORD_VERSIONS: dict[uuid.UUID, int] = {}


async def remember_password_version(db: Database, user_id: uuid.UUID) -> None:
    async with db.connection() as conn:
        changed_at = await conn.fetchval(
            "SELECT password_changed_at FROM users WHERE id = $1", user_id
        )
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    PASSWORD_VERSIONS[user_id] = (changed_at - epoch) // timedelta(microseconds=1)


def claims_for(user_id: uuid.UUID, **changes: Any) -> dict[str, Any]:
    """The claims Herald puts in an access token; a value of None drops that claim."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "pwv": PASSWORD_VERSIONS.get(user_id, 0),
        "sub": str(user_id),
        "name": "admin",
        "scope": "write",
        "iat": now,
        "exp": now + 900,
        "iss": "herald",
        "aud": "herald-api",
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


# -- the bearer dependency ------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Basic YWRtaW46SW50ZWdyYXRpb24tUGE1NXdvcmQtYThlMQ==",
        "Bearer",
        "Bearer ",
        "Bearer not-a-token",
        "Bearer a.b.c",
        "Bearer hrld_thisKeyWasNeverIssuedByHeraldAtAllxxxxxxxxxx",
        "Token hrld_abc",
    ],
)
async def test_me_without_a_valid_bearer_credential_is_401_with_a_bearer_challenge(
    client: httpx.AsyncClient, admin: uuid.UUID, authorization: str | None
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await client.get("/api/v1/me", headers=headers)
    assert_bearer_401(response)
    assert "admin" not in response.text


async def test_basic_credentials_of_a_real_user_do_not_authenticate(
    client: httpx.AsyncClient, admin: uuid.UUID
) -> None:
    basic = base64.b64encode(f"admin:{PASSWORD}".encode()).decode()
    response = await client.get("/api/v1/me", headers={"Authorization": f"Basic {basic}"})
    assert_bearer_401(response)


# -- the token endpoint ---------------------------------------------------------------


async def test_token_endpoint_fails_identically_for_unknown_user_and_wrong_password(
    client: httpx.AsyncClient, admin: uuid.UUID
) -> None:
    wrong = await request_token(client, "admin", "not-the-password-at-all")
    unknown = await request_token(client, "nobody-here", PASSWORD)
    for response in (wrong, unknown):
        assert_bearer_401(response)
        assert "access_token" not in response.text
    assert wrong.text == unknown.text
    assert wrong.headers["www-authenticate"] == unknown.headers["www-authenticate"]
    assert wrong.headers["content-type"] == unknown.headers["content-type"]


async def test_token_endpoint_issues_a_15_minute_hs256_jwt_that_me_accepts(
    client: httpx.AsyncClient, admin: uuid.UUID, service: AuthService
) -> None:
    response = await request_token(client, "admin", PASSWORD)
    assert response.status_code == 200, response.text
    assert response.headers.get("cache-control") == "no-store"
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    token = body["access_token"]
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
    claims = jwt.decode(token, service._jwt_key(), algorithms=["HS256"], audience="herald-api")
    assert claims["exp"] - claims["iat"] == 900
    assert abs(claims["iat"] - time.time()) < 60
    assert claims["sub"] == str(admin)

    who = await me(client, token)
    assert who.status_code == 200, who.text
    assert who.json() == {"id": str(admin), "username": "admin", "scope": "write", "via": "jwt"}


async def test_token_endpoint_refuses_other_grant_types(
    client: httpx.AsyncClient, admin: uuid.UUID
) -> None:
    response = await client.post(
        "/api/v1/auth/token",
        data={"username": "admin", "password": PASSWORD, "grant_type": "client_credentials"},
    )
    assert response.status_code == 400
    assert "access_token" not in response.text


# -- JWTs that must not work ------------------------------------------------------------


async def test_a_jwt_crafted_with_the_service_key_is_accepted(
    client: httpx.AsyncClient, admin: uuid.UUID, service: AuthService
) -> None:
    """The control for the rejections below: crafting itself produces a valid token."""
    token = jwt.encode(claims_for(admin), service._jwt_key(), algorithm="HS256")
    response = await me(client, token)
    assert response.status_code == 200, response.text
    assert response.json()["via"] == "jwt"


@pytest.mark.parametrize(
    "case",
    [
        "expired",
        "other_key",
        "alg_none",
        "wrong_audience",
        "wrong_issuer",
        "no_exp",
        "no_sub",
        "unknown_sub",
        "issued_in_the_future",
    ],
)
async def test_bad_jwts_are_401(
    client: httpx.AsyncClient, admin: uuid.UUID, service: AuthService, case: str
) -> None:
    key = service._jwt_key()
    now = int(time.time())
    if case == "expired":
        token = jwt.encode(claims_for(admin, iat=now - 1000, exp=now - 100), key, "HS256")
    elif case == "other_key":
        token = jwt.encode(claims_for(admin), hashlib.sha256(b"another key").digest(), "HS256")
    elif case == "alg_none":
        token = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims_for(admin))}."
    elif case == "wrong_audience":
        token = jwt.encode(claims_for(admin, aud="someone-else"), key, "HS256")
    elif case == "wrong_issuer":
        token = jwt.encode(claims_for(admin, iss="evil"), key, "HS256")
    elif case == "no_exp":
        token = jwt.encode(claims_for(admin, exp=None), key, "HS256")
    elif case == "no_sub":
        token = jwt.encode(claims_for(admin, sub=None), key, "HS256")
    elif case == "unknown_sub":
        token = jwt.encode(claims_for(uuid.uuid4()), key, "HS256")
    else:
        token = jwt.encode(claims_for(admin, iat=now + 3600, exp=now + 4500), key, "HS256")
    assert_bearer_401(await me(client, token))


async def test_a_jwt_of_a_deleted_user_is_401(
    client: httpx.AsyncClient, admin: uuid.UUID, db: Database
) -> None:
    token = await issued_token(client)
    assert (await me(client, token)).status_code == 200
    async with db.connection() as conn:
        await conn.execute("DELETE FROM users WHERE id = $1", admin)
    assert_bearer_401(await me(client, token))


async def test_a_password_change_revokes_tokens_issued_before_it(
    client: httpx.AsyncClient, admin: uuid.UUID, service: AuthService, db: Database
) -> None:
    async with db.connection() as conn:  # an account that has existed for a while
        await conn.execute("UPDATE users SET password_changed_at = now() - interval '1 hour'")
    await remember_password_version(db, admin)
    a_minute_ago = claims_for(admin, iat=int(time.time()) - 60)
    earlier = jwt.encode(a_minute_ago, service._jwt_key(), "HS256")
    assert (await me(client, earlier)).status_code == 200
    await service.set_password("admin", NEW_PASSWORD)
    assert_bearer_401(await me(client, earlier))
    assert_bearer_401(await request_token(client, "admin", PASSWORD))
    fresh = await issued_token(client, NEW_PASSWORD)
    assert (await me(client, fresh)).status_code == 200


async def test_a_password_change_revokes_a_token_issued_moments_before_it(
    client: httpx.AsyncClient, admin: uuid.UUID, service: AuthService, db: Database
) -> None:
    """Issue a token, change the password right away: the token must stop working.

    Both must happen within the same second, as they do whenever an operator reacts
    quickly (or a script does it): when a second boundary fell between them, the setup
    is tried again (from the password just set), whatever the machine's load.
    """
    old, new = PASSWORD, NEW_PASSWORD
    for _ in range(20):
        token = await issued_token(client, old)
        await service.set_password("admin", new)
        async with db.connection() as conn:
            changed_at = await conn.fetchval("SELECT password_changed_at FROM users")
        iat = jwt.decode(token, options={"verify_signature": False})["iat"]
        if iat == int(changed_at.timestamp()):
            break
        old, new = new, old
    else:
        raise AssertionError("setup: the token and the change never fell in the same second")
    assert_bearer_401(await me(client, token))


# -- API keys from the admin UI ------------------------------------------------------------


async def test_an_api_key_from_the_admin_ui_works_until_revoked(
    client: httpx.AsyncClient, admin: uuid.UUID
) -> None:
    logged_in = await login(client, "admin", PASSWORD)
    assert logged_in.status_code == 303
    assert logged_in.headers["location"] == "/admin/dashboard"

    token = await csrf_token(client, "/admin/api-keys")
    created = await client.post(
        "/admin/api-keys", data={"name": "deploy script", "scope": "write", "csrf_token": token}
    )
    assert created.status_code == 200, created.text
    assert created.headers.get("cache-control") == "no-store"
    match = NEW_API_KEY.search(created.text)
    assert match, created.text
    key = match.group(1)
    assert key.startswith("hrld_")
    assert len(key) >= len("hrld_") + 43  # 256 random bits

    who = await me(client, key)
    assert who.status_code == 200, who.text
    assert who.json() == {"id": str(admin), "username": "admin", "scope": "write", "via": "api_key"}

    # Shown once: neither the admin page nor the API listing shows it again, only its prefix.
    page = await client.get("/admin/api-keys")
    assert page.status_code == 200
    assert key not in page.text
    assert key[:KEY_PREFIX_LENGTH] in page.text
    listing = await client.get("/api/v1/api-keys", headers=bearer(key))
    assert listing.status_code == 200
    assert key not in listing.text
    [entry] = listing.json()["api_keys"]
    assert entry["name"] == "deploy script"
    assert entry["prefix"] == key[:KEY_PREFIX_LENGTH]
    assert entry["scope"] == "write"
    assert entry["revoked"] is False

    revoked = await client.post(
        f"/admin/api-keys/{entry['id']}/revoke",
        data={"csrf_token": await csrf_token(client, "/admin/api-keys")},
    )
    assert revoked.status_code == 303
    assert revoked.headers["location"] == "/admin/api-keys"
    assert_bearer_401(await me(client, key))
    assert_bearer_401(await client.get("/api/v1/api-keys", headers=bearer(key)))
    assert "revoked" in (await client.get("/admin/api-keys")).text


async def test_api_key_creation_in_the_admin_ui_needs_the_csrf_token(
    client: httpx.AsyncClient, admin: uuid.UUID, db: Database
) -> None:
    assert (await login(client, "admin", PASSWORD)).status_code == 303
    response = await client.post("/admin/api-keys", data={"name": "forged", "scope": "write"})
    assert response.status_code == 403
    assert NEW_API_KEY.search(response.text) is None
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == 0


# -- scopes ---------------------------------------------------------------------------------


async def test_a_read_scoped_key_reads_but_cannot_write(
    client: httpx.AsyncClient, admin: uuid.UUID, service: AuthService, db: Database
) -> None:
    _, reader = await service.create_api_key(admin, "reader", Scope.READ)
    target_id, target = await service.create_api_key(admin, "target", Scope.WRITE)

    who = await me(client, reader)
    assert who.status_code == 200
    assert who.json()["scope"] == "read"
    listing = await client.get("/api/v1/api-keys", headers=bearer(reader))
    assert listing.status_code == 200
    assert {k["name"] for k in listing.json()["api_keys"]} == {"reader", "target"}

    created = await client.post(
        "/api/v1/api-keys", json={"name": "escalate", "scope": "write"}, headers=bearer(reader)
    )
    assert created.status_code == 403, created.text
    assert "hrld_" not in created.text
    deleted = await client.delete(f"/api/v1/api-keys/{target_id}", headers=bearer(reader))
    assert deleted.status_code == 403, deleted.text

    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == 2
        assert await conn.fetchval("SELECT count(*) FROM api_keys WHERE revoked_at IS NULL") == 2
    assert (await me(client, target)).status_code == 200


async def test_a_write_scoped_key_revokes_keys_but_cannot_mint_them(
    client: httpx.AsyncClient, admin: uuid.UUID, service: AuthService
) -> None:
    """A leaked key must not be able to create successors that outlive its revocation."""
    _, writer = await service.create_api_key(admin, "writer", Scope.WRITE)
    minted = await client.post(
        "/api/v1/api-keys", json={"name": "successor", "scope": "write"}, headers=bearer(writer)
    )
    assert minted.status_code == 403
    assert "cannot create API keys" in minted.text

    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "made by api", "scope": "read"},
        headers=bearer(await issued_token(client)),
    )
    assert created.status_code == 201, created.text
    body = created.json()
    new_key = body["key"]
    assert new_key.startswith("hrld_")
    assert body["scope"] == "read"
    who = await me(client, new_key)
    assert who.status_code == 200
    assert who.json()["scope"] == "read"
    assert who.json()["via"] == "api_key"

    revoked = await client.delete(f"/api/v1/api-keys/{body['id']}", headers=bearer(writer))
    assert revoked.status_code == 204
    assert_bearer_401(await me(client, new_key))
    again = await client.delete(f"/api/v1/api-keys/{body['id']}", headers=bearer(writer))
    assert again.status_code == 404
    assert (await me(client, writer)).status_code == 200


async def test_a_jwt_has_the_write_scope(client: httpx.AsyncClient, admin: uuid.UUID) -> None:
    token = await issued_token(client)
    created = await client.post(
        "/api/v1/api-keys", json={"name": "from jwt", "scope": "write"}, headers=bearer(token)
    )
    assert created.status_code == 201, created.text
    assert (await me(client, created.json()["key"])).json()["scope"] == "write"


async def test_a_key_cannot_revoke_another_users_key(
    client: httpx.AsyncClient, admin: uuid.UUID, service: AuthService
) -> None:
    other = await service.create_user("other", PASSWORD)
    other_id, other_key = await service.create_api_key(other, "theirs", Scope.READ)
    _, writer = await service.create_api_key(admin, "mine", Scope.WRITE)

    response = await client.delete(f"/api/v1/api-keys/{other_id}", headers=bearer(writer))
    assert response.status_code == 404
    listing = await client.get("/api/v1/api-keys", headers=bearer(writer))
    assert [k["name"] for k in listing.json()["api_keys"]] == ["mine"]
    who = await me(client, other_key)
    assert who.status_code == 200
    assert who.json()["username"] == "other"


async def test_an_invalid_new_key_request_is_400(
    client: httpx.AsyncClient, admin: uuid.UUID, service: AuthService
) -> None:
    writer = await issued_token(client)
    for body in ({"name": ""}, {"name": "x", "scope": "admin"}, {}):
        response = await client.post("/api/v1/api-keys", json=body, headers=bearer(writer))
        assert response.status_code == 400, (body, response.text)


async def test_only_a_sha256_of_an_api_key_is_stored(
    client: httpx.AsyncClient, admin: uuid.UUID, service: AuthService, db: Database
) -> None:
    _, by_service = await service.create_api_key(admin, "service", Scope.WRITE)
    created = await client.post(
        "/api/v1/api-keys",
        json={"name": "api", "scope": "read"},
        headers=bearer(await issued_token(client)),
    )
    assert created.status_code == 201
    assert (await login(client, "admin", PASSWORD)).status_code == 303
    page = await client.post(
        "/admin/api-keys",
        data={
            "name": "ui",
            "scope": "read",
            "csrf_token": await csrf_token(client, "/admin/api-keys"),
        },
    )
    match = NEW_API_KEY.search(page.text)
    assert match
    keys = {"service": by_service, "api": created.json()["key"], "ui": match.group(1)}

    async with db.connection() as conn:
        rows = await conn.fetch("SELECT * FROM api_keys")
    assert {row["name"] for row in rows} == set(keys)
    for row in rows:
        key = keys[row["name"]]
        assert bytes(row["key_hash"]) == hashlib.sha256(key.encode()).digest()
        assert row["prefix"] == key[:KEY_PREFIX_LENGTH]
        secret_part = key[KEY_PREFIX_LENGTH:]
        for value in dict(row).values():
            text = value.hex() if isinstance(value, bytes) else str(value)
            assert secret_part not in text
            if isinstance(value, bytes):
                assert secret_part.encode() not in value


# -- throttling ------------------------------------------------------------------------------


async def test_ten_failed_token_requests_lock_the_address_even_for_the_right_password(
    client: httpx.AsyncClient, admin: uuid.UUID
) -> None:
    for i in range(10):
        response = await request_token(client, "admin", f"wrong password {i:02d}")
        assert response.status_code == 401, (i, response.text)

    locked = await request_token(client, "admin", PASSWORD)
    assert locked.status_code == 429, locked.text
    assert "access_token" not in locked.text
    retry_after = int(locked.headers["retry-after"])
    assert 800 <= retry_after <= 901, retry_after

    # The same counters hold for the login form.
    form = await login(client, "admin", PASSWORD)
    assert form.status_code == 429
    assert "herald_session" not in form.headers.get("set-cookie", "")
    assert "retry-after" in form.headers


async def test_nine_failures_do_not_lock(client: httpx.AsyncClient, admin: uuid.UUID) -> None:
    for i in range(9):
        assert (await request_token(client, "admin", f"wrong password {i:02d}")).status_code == 401
    assert (await request_token(client, "admin", PASSWORD)).status_code == 200


async def test_ten_failures_from_one_ip_lock_that_ip_across_usernames(
    app: FastAPI, admin: uuid.UUID
) -> None:
    async with client_at(app, "203.0.113.7") as attacker, client_at(app, "203.0.113.8") as other:
        for i in range(10):
            response = await request_token(attacker, f"guess-{i}", "Some-Password-123")
            assert response.status_code == 401, (i, response.text)
        locked = await request_token(attacker, "admin", PASSWORD)
        assert locked.status_code == 429, locked.text
        assert int(locked.headers["retry-after"]) > 0
        # Only that address: the account itself is not locked.
        assert (await request_token(other, "admin", PASSWORD)).status_code == 200


# A username's failures from many addresses slow its other clients down but never lock
# them out: tests/integration/test_login_throttling.py.


async def test_retry_after_is_when_the_address_is_below_the_limit_again(
    app: FastAPI, admin: uuid.UUID, db: Database
) -> None:
    """Counted from the address's own failures: the oldest of them leaves the window in
    about a minute; the username's failures (all fresh) do not lengthen the wait."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO login_failures (scope, key, failed_at) "
            "SELECT 'ip', '192.0.2.2', now() - interval '14 minutes' FROM generate_series(1, 5)"
        )
    async with client_at(app, "192.0.2.2") as attacker:
        for i in range(5):
            assert (await request_token(attacker, "admin", f"wrong {i:02d}")).status_code == 401
        locked = await request_token(attacker, "admin", PASSWORD)
    assert locked.status_code == 429
    assert 1 <= int(locked.headers["retry-after"]) <= 61, locked.headers["retry-after"]


async def test_concurrent_guesses_do_not_get_past_the_limit(
    app: FastAPI, admin: uuid.UUID, db: Database
) -> None:
    async with client_at(app, "192.0.2.50") as attacker:
        responses = await asyncio.gather(
            *(request_token(attacker, "admin", f"concurrent guess {i:02d}") for i in range(25))
        )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {401, 429}, statuses
    async with db.connection() as conn:
        recorded = await conn.fetchval(
            "SELECT count(*) FROM login_failures WHERE scope = 'username' AND key = 'admin'"
        )
    assert statuses.count(401) <= 10, f"{statuses.count(401)} passwords tried; {recorded=}"
