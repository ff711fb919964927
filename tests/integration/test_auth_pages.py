"""Admin log-in, sessions, password change, log-out and CSRF (contract §4), in-process."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest
import structlog

from herald.auth.passwords import Passwords
from herald.auth.service import AuthService
from herald.composition.app import create_app
from herald.core.config import Settings
from herald.core.db import Database
from tests.support.database import make_settings
from tests.support.queue import wait_until

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
async def admin(db: Database, settings: Settings) -> str:
    passwords = Passwords(threads=1)
    try:
        await AuthService(db, settings, passwords).create_user("admin", PASSWORD)
    finally:
        passwords.close()
    return "admin"


async def csrf_token(client: httpx.AsyncClient, path: str) -> str:
    response = await client.get(path)
    assert response.status_code == 200, response.text
    match = CSRF.search(response.text)
    assert match, response.text
    return match.group(1)


async def login(
    client: httpx.AsyncClient, username: str = "admin", password: str = PASSWORD
) -> httpx.Response:
    token = await csrf_token(client, "/login")
    return await client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


async def flashes_on(client: httpx.AsyncClient, path: str) -> str:
    return (await client.get(path)).text


@pytest.fixture
async def second_client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            yield c


# -- log in ------------------------------------------------------------------------


async def test_login_form_has_the_contract_fields(client: httpx.AsyncClient) -> None:
    page = (await client.get("/login")).text
    for field in ('name="username"', 'name="password"', 'name="csrf_token"'):
        assert field in page


async def test_login_success_redirects_to_the_dashboard(
    client: httpx.AsyncClient, admin: str
) -> None:
    response = await login(client)
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/dashboard"
    cookie = response.headers["set-cookie"]
    assert "herald_session=" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    assert "Secure" not in cookie  # development: plain http works
    dashboard = await client.get("/admin/dashboard")
    assert dashboard.status_code == 200
    assert "Welcome admin" in dashboard.text
    for link in ("/admin/password", "/admin/api-keys", "/admin/logout"):
        assert link in dashboard.text


@pytest.mark.parametrize(
    ("username", "password"), [("admin", "wrong password!"), ("nobody", PASSWORD)]
)
async def test_login_failure_is_the_same_for_unknown_user_and_wrong_password(
    client: httpx.AsyncClient, admin: str, username: str, password: str
) -> None:
    response = await login(client, username, password)
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert "herald_session" not in response.headers.get("set-cookie", "")
    assert "Authentication failed" in await flashes_on(client, "/login")
    assert "Authentication failed" not in await flashes_on(client, "/login"), "shown once"


async def test_the_session_cookie_changes_at_login(
    client: httpx.AsyncClient, admin: str, db: Database
) -> None:
    client.cookies.set("herald_session", "planted-by-an-attacker", domain="herald.test")
    form = {
        "username": "admin",
        "password": PASSWORD,
        "csrf_token": await csrf_token(client, "/login"),
    }
    assert (await client.post("/login", data=form)).status_code == 303
    first = client.cookies.get("herald_session")
    assert first
    assert first != "planted-by-an-attacker"
    # Logging in again (say, from a login form left open in another tab) rotates it again.
    assert (await client.post("/login", data=form)).status_code == 303
    second = client.cookies.get("herald_session")
    assert second
    assert second != first
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sessions") == 1, "old session ended"


async def test_only_a_hash_of_the_session_token_is_stored(
    client: httpx.AsyncClient, admin: str, db: Database
) -> None:
    await login(client)
    token = client.cookies.get("herald_session")
    assert token is not None
    assert len(token) >= 43  # 256 bits, base64url
    async with db.connection() as conn:
        stored = await conn.fetchval("SELECT token_hash FROM sessions")
    assert token.encode() not in stored


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/admin/dashboard"),
        ("GET", "/admin/password"),
        ("POST", "/admin/password"),
        ("POST", "/admin/logout"),
        ("GET", "/admin/api-keys"),
        ("POST", "/admin/api-keys"),
    ],
)
async def test_anonymous_admin_requests_go_to_login_before_any_other_check(
    client: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await client.request(method, path, data={"garbage": "x"})
    assert response.status_code == 303
    assert response.headers["location"] == "/login"


async def test_a_logged_in_visitor_of_login_goes_to_the_dashboard(
    client: httpx.AsyncClient, admin: str
) -> None:
    await login(client)
    response = await client.get("/login")
    assert (response.status_code, response.headers["location"]) == (303, "/admin/dashboard")


# -- sessions ------------------------------------------------------------------------


async def test_an_idle_session_expires(client: httpx.AsyncClient, admin: str, db: Database) -> None:
    await login(client)
    async with db.connection() as conn:
        await conn.execute("UPDATE sessions SET last_seen_at = now() - interval '31 minutes'")
    response = await client.get("/admin/dashboard")
    assert (response.status_code, response.headers["location"]) == (303, "/login")


async def test_a_session_ends_at_its_absolute_limit(
    client: httpx.AsyncClient, admin: str, db: Database
) -> None:
    await login(client)
    async with db.connection() as conn:
        await conn.execute("UPDATE sessions SET expires_at = now() - interval '1 second'")
    assert (await client.get("/admin/dashboard")).status_code == 303


async def test_activity_keeps_a_session_alive(
    client: httpx.AsyncClient, admin: str, db: Database
) -> None:
    await login(client)
    async with db.connection() as conn:
        await conn.execute("UPDATE sessions SET last_seen_at = now() - interval '29 minutes'")
    assert (await client.get("/admin/dashboard")).status_code == 200
    async with db.connection() as conn:
        idle = await conn.fetchval("SELECT now() - last_seen_at FROM sessions")
    assert idle.total_seconds() < 60


# -- log out -----------------------------------------------------------------------


async def test_logout_ends_the_session(client: httpx.AsyncClient, admin: str, db: Database) -> None:
    await login(client)
    token = client.cookies.get("herald_session")
    csrf = await csrf_token(client, "/admin/dashboard")
    response = await client.post("/admin/logout", data={"csrf_token": csrf})
    assert (response.status_code, response.headers["location"]) == (303, "/login")
    assert "You have successfully logged out." in await flashes_on(client, "/login")
    assert (await client.get("/admin/dashboard")).status_code == 303
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sessions") == 0
    client.cookies.set("herald_session", token or "", domain="herald.test")
    assert (await client.get("/admin/dashboard")).status_code == 303, "a logged-out token is dead"


# -- password change -------------------------------------------------------------------


async def change_password(
    client: httpx.AsyncClient, current: str, new: str, check: str | None = None
) -> str:
    csrf = await csrf_token(client, "/admin/password")
    response = await client.post(
        "/admin/password",
        data={
            "current_password": current,
            "new_password": new,
            "new_password_check": new if check is None else check,
            "csrf_token": csrf,
        },
    )
    assert (response.status_code, response.headers["location"]) == (303, "/admin/password")
    return await flashes_on(client, "/admin/password")


async def test_password_form_has_the_contract_fields(client: httpx.AsyncClient, admin: str) -> None:
    await login(client)
    page = (await client.get("/admin/password")).text
    for field in ("current_password", "new_password", "new_password_check", "csrf_token"):
        assert f'name="{field}"' in page


@pytest.mark.parametrize(
    ("current", "new", "check", "message"),
    [
        (
            PASSWORD,
            "a brand new passphrase",
            "another new passphrase",
            "You entered two different new passwords - the field values must match.",
        ),
        ("not my password!", "a brand new passphrase", None, "The current password is incorrect."),
        (PASSWORD, "short", None, "too short"),
        (PASSWORD, "x" * 129, None, "too long"),
        (PASSWORD, PASSWORD, None, "must be different"),
    ],
)
async def test_rejected_password_changes_say_why_and_change_nothing(
    client: httpx.AsyncClient, admin: str, current: str, new: str, check: str | None, message: str
) -> None:
    await login(client)
    assert message in await change_password(client, current, new, check)
    await client.post(
        "/admin/logout", data={"csrf_token": await csrf_token(client, "/admin/dashboard")}
    )
    assert (await login(client)).headers["location"] == "/admin/dashboard"


async def test_password_change_works_and_ends_other_sessions(
    client: httpx.AsyncClient, second_client: httpx.AsyncClient, admin: str
) -> None:
    await login(client)
    await login(second_client)
    new = "an entirely new passphrase"
    assert "Your password has been changed." in await change_password(client, PASSWORD, new)
    assert (await client.get("/admin/dashboard")).status_code == 200, "this session stays"
    assert (await second_client.get("/admin/dashboard")).status_code == 303, "others end"
    assert (await login(second_client, password=PASSWORD)).headers["location"] == "/login"
    assert (await login(second_client, password=new)).headers["location"] == "/admin/dashboard"


# -- CSRF --------------------------------------------------------------------------------


async def test_a_post_without_the_csrf_token_is_403_and_changes_nothing(
    client: httpx.AsyncClient, admin: str
) -> None:
    await login(client)
    response = await client.post(
        "/admin/password",
        data={
            "current_password": PASSWORD,
            "new_password": "hijacked passphrase!",
            "new_password_check": "hijacked passphrase!",
        },
    )
    assert response.status_code == 403
    await client.post(
        "/admin/logout", data={"csrf_token": await csrf_token(client, "/admin/dashboard")}
    )
    assert (await login(client)).headers["location"] == "/admin/dashboard"


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
    ],
)
async def test_a_post_from_a_foreign_origin_is_403_even_with_a_token(
    client: httpx.AsyncClient, admin: str, db: Database, headers: dict[str, str]
) -> None:
    await login(client)
    csrf = await csrf_token(client, "/admin/dashboard")
    response = await client.post("/admin/logout", data={"csrf_token": csrf}, headers=headers)
    assert response.status_code == 403
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sessions") == 1, "still logged in"


async def test_a_token_from_another_session_is_refused(
    client: httpx.AsyncClient, second_client: httpx.AsyncClient, admin: str
) -> None:
    await login(client)
    await login(second_client)
    foreign = await csrf_token(second_client, "/admin/dashboard")
    response = await client.post("/admin/logout", data={"csrf_token": foreign})
    assert response.status_code == 403


async def test_same_origin_posts_pass(client: httpx.AsyncClient, admin: str) -> None:
    await login(client)
    csrf = await csrf_token(client, "/admin/dashboard")
    response = await client.post(
        "/admin/logout",
        data={"csrf_token": csrf},
        headers={"Origin": "http://herald.test", "Sec-Fetch-Site": "same-origin"},
    )
    assert response.status_code == 303


async def test_login_without_a_csrf_token_is_403_and_starts_no_session(
    client: httpx.AsyncClient, admin: str, db: Database
) -> None:
    await client.get("/login")
    response = await client.post("/login", data={"username": "admin", "password": PASSWORD})
    assert response.status_code == 403
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM sessions") == 0


# -- throttling, headers, flashes, logs -------------------------------------------------


async def test_failed_logins_are_throttled_per_address(
    client: httpx.AsyncClient, admin: str
) -> None:
    for _ in range(10):
        assert (await login(client, password="wrong password")).headers["location"] == "/login"
    blocked = await login(client)  # even the right password
    assert blocked.status_code == 429
    assert 1 <= int(blocked.headers["retry-after"]) <= 15 * 60


async def test_security_headers_on_html_pages(client: httpx.AsyncClient) -> None:
    response = await client.get("/login")
    csp = response.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp
    assert "script-src 'nonce-" in csp
    assert "unsafe-inline" not in csp
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"]
    assert "strict-transport-security" not in response.headers
    assert (await client.get("/static/herald.css")).status_code == 200


async def test_hsts_in_production(database_url: str, db: Database) -> None:
    settings = make_settings(
        database_url,
        env="production",
        base_url="https://news.herald-news.org",
        email={"provider": "outbox", "sender": "news@herald-news.org"},
    )
    app = create_app(settings, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="https://herald.test") as c:
            response = await c.get("/login")
            assert "max-age=" in response.headers["strict-transport-security"]
            assert "Secure" in response.headers["set-cookie"]


async def test_a_forged_flash_cookie_is_ignored(client: httpx.AsyncClient) -> None:
    client.cookies.set("herald_flash", "W3sibSI6ICJwd25lZCJ9XQ.bad", domain="herald.test")
    assert "pwned" not in (await client.get("/login")).text


async def test_passwords_never_reach_the_logs(
    client: httpx.AsyncClient, admin: str, caplog: pytest.LogCaptureFixture
) -> None:
    new = "a fresh passphrase 1234"
    with structlog.testing.capture_logs() as events:
        await login(client, password="a wrong guess 987")
        await login(client)
        await change_password(client, PASSWORD, new)
    text = repr(events) + caplog.text
    assert events, "something was logged"
    for secret in (PASSWORD, new, "a wrong guess 987"):
        assert secret not in text


async def test_a_hash_with_old_parameters_is_upgraded_at_login(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    weak = Passwords(memory_kib=8 * 1024, time_cost=1, threads=1)
    try:
        await AuthService(db, settings, weak).create_user("old", PASSWORD)
    finally:
        weak.close()
    async with db.connection() as conn:
        before = await conn.fetchval("SELECT password_hash FROM users")
    assert "m=8192,t=1" in before
    assert (await login(client, "old")).headers["location"] == "/admin/dashboard"
    async with db.connection() as conn:
        after = await conn.fetchval("SELECT password_hash FROM users")
    assert "m=19456,t=2,p=1" in after


async def test_a_login_flood_does_not_starve_other_requests(
    client: httpx.AsyncClient, admin: str, db: Database
) -> None:
    import asyncio
    import time

    token = await csrf_token(client, "/login")
    form = {"username": "admin", "password": "wrong password", "csrf_token": token}
    flood = [asyncio.create_task(client.post("/login", data=form)) for _ in range(12)]

    async def flooding() -> bool:  # attempts are recorded before their password check
        async with db.connection() as conn:
            return bool(await conn.fetchval("SELECT count(*) FROM login_failures"))

    await wait_until(flooding, timeout=30, interval=0.01)
    started = time.monotonic()
    assert (await client.get("/health/live")).status_code == 200
    latency = time.monotonic() - started
    pending = sum(not request.done() for request in flood)
    await asyncio.gather(*flood)
    assert pending, "/health/live was answered only after the whole login flood"
    # Only catches a hang: how fast it answers is measured by bench/, not here.
    assert latency < 10, f"/health/live took {latency:.2f} s during a login flood"
