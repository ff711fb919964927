"""Login throttling that a stranger cannot turn against the admin (OWASP's way).

* Per client address: a hard limit (10 failures in 15 minutes → 429), for the form and
  the API token endpoint alike.
* Per username: a browser that signed in successfully before holds a signed device
  cookie and is exempt (its own failures are limited per device instead); every other
  client (a new browser, an API client) gets a bounded progressive delay, never a lock.

Client addresses vary through ``httpx.ASGITransport(client=...)``: that is
``request.client``, which uvicorn fills from X-Forwarded-For when the peer is one of
HERALD_FORWARDED_ALLOW_IPS. The delay itself is replaced by a recorder
(``record_pauses``): the tests check which delay each attempt was given, not the clock.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from herald.auth.service import AuthService
from herald.composition.app import create_app
from herald.core.config import Settings
from herald.core.db import Database
from tests.support.auth import (
    client_at,
    csrf_token,
    fast_passwords,
    login,
    record_pauses,
    request_token,
)
from tests.support.database import make_settings

PASSWORD = "Throttle-Pa55word-3c9d"
DEVICE_COOKIE = "herald_device"
ONE_YEAR = 365 * 24 * 3600


@pytest.fixture
async def app(settings: Settings, db: Database) -> AsyncIterator[FastAPI]:
    application = create_app(settings, db=db)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def admin(db: Database, settings: Settings) -> uuid.UUID:
    passwords = fast_passwords()
    try:
        return await AuthService(db, settings, passwords).create_user("admin", PASSWORD)
    finally:
        passwords.close()


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    return record_pauses(monkeypatch)


async def logout(client: httpx.AsyncClient) -> None:
    token = await csrf_token(client, "/admin/dashboard")
    response = await client.post("/admin/logout", data={"csrf_token": token})
    assert (response.status_code, response.headers["location"]) == (303, "/login")


async def strangers_fail(app: FastAPI, count: int, *, api: bool = False) -> None:
    """``count`` wrong passwords for ``admin``, each from an address of its own."""
    for i in range(count):
        async with client_at(app, f"198.51.{100 + i // 200}.{i % 200 + 1}") as stranger:
            if api:
                response = await request_token(stranger, "admin", f"wrong guess {i:03d}")
                assert response.status_code == 401, (i, response.text)
            else:
                response = await login(stranger, "admin", f"wrong guess {i:03d}")
                assert (response.status_code, response.headers["location"]) == (303, "/login")


def set_cookie_line(response: httpx.Response, name: str) -> str:
    lines = [v for k, v in response.headers.multi_items() if k == "set-cookie"]
    [line] = [v for v in lines if v.startswith(f"{name}=")]
    return line


# -- the admin's usual browser -------------------------------------------------------------


async def test_forty_failures_from_forty_addresses_do_not_keep_the_usual_browser_out(
    app: FastAPI, admin: uuid.UUID, pauses: list[float]
) -> None:
    async with client_at(app, "192.0.2.10") as browser:
        signed_in = await login(browser, "admin", PASSWORD)
        assert signed_in.headers["location"] == "/admin/dashboard"
        await logout(browser)

        await strangers_fail(app, 40)
        assert pauses, "the strangers past the limit were slowed down"
        slowed = len(pauses)

        response = await login(browser, "admin", PASSWORD)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == "/admin/dashboard"
        assert len(pauses) == slowed, "the usual browser signs in at once, without a delay"
        assert (await browser.get("/admin/dashboard")).status_code == 200


async def test_the_device_cookie_is_signed_long_lived_and_survives_logout(
    app: FastAPI, admin: uuid.UUID
) -> None:
    async with client_at(app, "192.0.2.11") as browser:
        response = await login(browser, "admin", PASSWORD)
        line = set_cookie_line(response, DEVICE_COOKIE).lower()
        assert "httponly" in line
        assert "samesite=lax" in line
        assert "path=/" in line
        assert "secure" not in line  # development: plain http
        max_age = int(line.split("max-age=")[1].split(";")[0])
        assert max_age >= ONE_YEAR - 60
        device = browser.cookies.get(DEVICE_COOKIE)
        assert device
        assert "." in device, device

        token = await csrf_token(browser, "/admin/dashboard")
        logged_out = await browser.post("/admin/logout", data={"csrf_token": token})
        assert DEVICE_COOKIE not in logged_out.headers.get("set-cookie", "")
        assert browser.cookies.get(DEVICE_COOKIE) == device


async def test_the_device_cookie_is_secure_in_production(
    database_url: str, db: Database, admin: uuid.UUID
) -> None:
    settings = make_settings(
        database_url,
        env="production",
        base_url="https://news.herald-news.org",
        email={"provider": "outbox", "sender": "news@herald-news.org"},
    )
    application = create_app(settings, db=db)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="https://herald.test") as c:
            response = await login(c, "admin", PASSWORD)
    assert response.headers["location"] == "/admin/dashboard"
    assert "secure" in set_cookie_line(response, DEVICE_COOKIE).lower()


async def test_a_trusted_browser_behind_a_locked_address_still_signs_in(
    app: FastAPI, admin: uuid.UUID, pauses: list[float]
) -> None:
    """A shared address (office NAT, a proxy Herald is not told about) locked by a stranger."""
    async with client_at(app, "203.0.113.5") as browser:
        assert (await login(browser, "admin", PASSWORD)).status_code == 303
        await logout(browser)
    async with client_at(app, "203.0.113.5") as stranger:
        for i in range(10):
            assert (await login(stranger, "admin", f"wrong {i}")).headers["location"] == "/login"
        refused = await login(stranger, "admin", PASSWORD)
        assert refused.status_code == 429, "that address is stopped"
    async with client_at(app, "203.0.113.5") as same_address:
        same_address.cookies.set(DEVICE_COOKIE, browser.cookies[DEVICE_COOKIE], "herald.test")
        response = await login(same_address, "admin", PASSWORD)
    assert (response.status_code, response.headers["location"]) == (303, "/admin/dashboard")


# -- what a device cookie does not do -----------------------------------------------------------


async def test_guesses_with_a_device_cookie_are_limited_per_device(
    app: FastAPI, admin: uuid.UUID, pauses: list[float]
) -> None:
    """A stolen device cookie is no licence to guess: ten failures lock that cookie."""
    async with client_at(app, "192.0.2.20") as owner:
        assert (await login(owner, "admin", PASSWORD)).status_code == 303
    device = owner.cookies[DEVICE_COOKIE]
    for i in range(10):
        async with client_at(app, f"198.18.0.{i + 1}") as thief:
            thief.cookies.set(DEVICE_COOKIE, device, "herald.test")
            response = await login(thief, "admin", f"wrong {i}")
            assert response.headers["location"] == "/login"
    async with client_at(app, "198.18.0.100") as thief:
        thief.cookies.set(DEVICE_COOKIE, device, "herald.test")
        locked = await login(thief, "admin", PASSWORD)
    assert locked.status_code == 429, locked.text
    assert 800 <= int(locked.headers["retry-after"]) <= 901
    assert "herald_session" not in locked.headers.get("set-cookie", "")
    # That device's failures are its own: a new browser is neither locked nor slowed.
    async with client_at(app, "192.0.2.21") as new_browser:
        response = await login(new_browser, "admin", PASSWORD)
    assert response.headers["location"] == "/admin/dashboard"
    assert pauses == []


@pytest.mark.parametrize("case", ["other_user", "tampered", "garbage"])
async def test_a_device_cookie_of_another_user_or_a_forged_one_exempts_nothing(
    app: FastAPI,
    admin: uuid.UUID,
    db: Database,
    settings: Settings,
    pauses: list[float],
    case: str,
) -> None:
    passwords = fast_passwords()
    try:
        await AuthService(db, settings, passwords).create_user("editor", PASSWORD)
    finally:
        passwords.close()
    async with client_at(app, "192.0.2.30") as browser:
        assert (await login(browser, "editor", PASSWORD)).status_code == 303
        await logout(browser)
    device = browser.cookies[DEVICE_COOKIE]
    if case == "tampered":
        device = device[:-2] + ("AA" if not device.endswith("AA") else "BB")
    elif case == "garbage":
        device = "not-a-device-cookie"
    await strangers_fail(app, 12)
    slowed = len(pauses)
    async with client_at(app, "192.0.2.31") as browser:
        browser.cookies.set(DEVICE_COOKIE, device, "herald.test")
        response = await login(browser, "admin", PASSWORD)
    assert response.headers["location"] == "/admin/dashboard"
    assert len(pauses) == slowed + 1, "treated like any new browser: delayed"


# -- everyone else: a bounded progressive delay, never a lock-out ------------------------


async def test_a_stranger_cannot_lock_the_admins_api_client_out(
    app: FastAPI, admin: uuid.UUID, settings: Settings, pauses: list[float]
) -> None:
    await strangers_fail(app, 40, api=True)
    async with client_at(app, "192.0.2.40") as api_client:
        response = await request_token(api_client, "admin", PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json()["access_token"]
    assert 0 < pauses[-1] <= settings.auth.login_max_delay_seconds


async def test_the_username_delay_grows_with_the_failures_and_is_bounded(
    app: FastAPI, admin: uuid.UUID, settings: Settings, pauses: list[float]
) -> None:
    limit = settings.auth.login_max_failures
    await strangers_fail(app, limit)
    assert pauses == [], "no delay up to the limit"
    await strangers_fail(app, 20, api=True)
    assert len(pauses) == 20
    assert pauses == sorted(pauses), pauses
    assert pauses[0] < pauses[-1] == settings.auth.login_max_delay_seconds


async def test_the_delay_is_the_same_for_an_existing_and_an_unknown_username(
    app: FastAPI, admin: uuid.UUID, pauses: list[float]
) -> None:
    answers = []
    for n, username in enumerate(("admin", "nobody")):
        for i in range(14):
            async with client_at(app, f"198.18.{n}.{i + 1}") as c:
                answers.append(await request_token(c, username, f"wrong {i:02d}"))
    assert {a.status_code for a in answers} == {401}
    assert len({a.text for a in answers}) == 1
    assert pauses[:4] == pauses[4:], pauses


async def test_one_address_is_still_stopped_whatever_the_username(
    app: FastAPI, admin: uuid.UUID
) -> None:
    async with client_at(app, "203.0.113.7") as guesser:
        for i in range(10):
            response = await login(guesser, f"guess-{i}", "Some-Password-123")
            assert response.headers["location"] == "/login"
        form = await login(guesser, "admin", PASSWORD)
        api = await request_token(guesser, "admin", PASSWORD)
    for locked in (form, api):
        assert locked.status_code == 429, locked.text
        assert 800 <= int(locked.headers["retry-after"]) <= 901
    assert "herald_session" not in form.headers.get("set-cookie", "")
    async with client_at(app, "203.0.113.8") as elsewhere:
        assert (await request_token(elsewhere, "admin", PASSWORD)).status_code == 200
