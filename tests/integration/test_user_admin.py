"""Users and roles in the admin UI: /admin/users (create, disable, enable, role, password
reset), the editor role's limits, and the read-only settings pages."""

from __future__ import annotations

import html
import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from herald.auth.domain import Role, Scope
from herald.auth.passwords import Passwords
from herald.auth.service import AuthService
from herald.composition.app import create_app
from herald.core.config import Settings
from herald.core.db import Database
from tests.support.database import make_settings
from tests.support.newsletters import CSRF, PASSWORD, add_subscribers, log_in, newsletter_form

NEW_PASSWORD = "a brand new passphrase"
ADMINS_ONLY = "Only admins can manage users, API keys and settings."
LAST_ADMIN = "Herald needs at least one active admin"


@pytest.fixture
async def editor_client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A second browser on its own app instance (signed in by the test)."""
    app = create_app(settings, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            yield c


async def csrf(client: httpx.AsyncClient, path: str = "/admin/users") -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    match = CSRF.search(page.text)
    assert match
    return match.group(1)


async def create_user(
    client: httpx.AsyncClient, username: str, role: str = "editor", password: str = PASSWORD
) -> httpx.Response:
    token = await csrf(client)
    return await client.post(
        "/admin/users",
        data={"username": username, "password": password, "role": role, "csrf_token": token},
    )


async def user_id(db: Database, username: str) -> uuid.UUID:
    async with db.connection() as conn:
        found: uuid.UUID = await conn.fetchval("SELECT id FROM users WHERE username = $1", username)
    return found


async def row(db: Database, username: str) -> tuple[str, bool]:
    async with db.connection() as conn:
        r = await conn.fetchrow(
            "SELECT role, disabled_at IS NOT NULL AS disabled FROM users WHERE username = $1",
            username,
        )
    assert r is not None
    return r["role"], r["disabled"]


async def post(client: httpx.AsyncClient, path: str, **data: str) -> httpx.Response:
    token = await csrf(client, "/admin/users")
    return await client.post(path, data={"csrf_token": token, **data})


async def test_an_admin_lists_and_creates_users(admin_client: httpx.AsyncClient, db: Database):
    created = await create_user(admin_client, "ed")
    assert (created.status_code, created.headers["location"]) == (303, "/admin/users")
    listing = await admin_client.get("/admin/users")
    assert "User ed created (editor)." in listing.text
    assert ">ed</a>" in listing.text
    assert ">admin</a>" in listing.text
    assert await row(db, "ed") == ("editor", False)

    # The password policy and unique names hold; each refusal says why.
    short = await create_user(admin_client, "shorty", password="too short")
    assert short.headers["location"] == "/admin/users"
    assert "too short" in (await admin_client.get("/admin/users")).text
    again = await create_user(admin_client, "ED")
    assert again.headers["location"] == "/admin/users"
    assert "already exists" in html.unescape((await admin_client.get("/admin/users")).text)
    bad_role = await create_user(admin_client, "owner1", role="owner")
    assert bad_role.headers["location"] == "/admin/users"
    assert "A role is admin or editor." in (await admin_client.get("/admin/users")).text
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 2


async def test_every_action_needs_the_csrf_token(admin_client: httpx.AsyncClient, db: Database):
    await create_user(admin_client, "ed")
    ed = await user_id(db, "ed")
    for path, data in [
        ("/admin/users", {"username": "forged", "password": PASSWORD, "role": "admin"}),
        (f"/admin/users/{ed}/disable", {}),
        (f"/admin/users/{ed}/enable", {}),
        (f"/admin/users/{ed}/role", {"role": "admin"}),
        (
            f"/admin/users/{ed}/password",
            {"new_password": NEW_PASSWORD, "new_password_check": NEW_PASSWORD},
        ),
    ]:
        response = await admin_client.post(path, data=data)
        assert response.status_code == 403, path
    assert await row(db, "ed") == ("editor", False)
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM users") == 2


async def test_the_last_active_admin_cannot_disable_or_demote_themselves(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    me = await user_id(db, "admin")
    for path, data in [
        (f"/admin/users/{me}/disable", {}),
        (f"/admin/users/{me}/role", {"role": "editor"}),
    ]:
        refused = await post(admin_client, path, **data)
        assert refused.status_code == 409, path
        assert LAST_ADMIN in refused.text
    assert await row(db, "admin") == ("admin", False)
    assert (await admin_client.get("/admin/users")).status_code == 200  # still signed in

    # A disabled admin does not count: making them the only other admin changes nothing.
    await create_user(admin_client, "other", role="admin")
    other = await user_id(db, "other")
    assert (await post(admin_client, f"/admin/users/{other}/disable")).status_code == 303
    assert (await post(admin_client, f"/admin/users/{me}/role", role="editor")).status_code == 409

    # With another active admin, demoting yourself is fine (and ends your admin pages).
    assert (await post(admin_client, f"/admin/users/{other}/enable")).status_code == 303
    demoted = await post(admin_client, f"/admin/users/{me}/role", role="editor")
    assert (demoted.status_code, demoted.headers["location"]) == (303, "/admin/dashboard")
    assert await row(db, "admin") == ("editor", False)
    assert (await admin_client.get("/admin/users")).status_code == 403


async def test_a_disabled_user_is_refused_at_once(
    admin_client: httpx.AsyncClient,
    editor_client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
) -> None:
    await create_user(admin_client, "ed")
    ed = await user_id(db, "ed")
    await log_in(editor_client, "ed")
    assert (await editor_client.get("/admin/dashboard")).status_code == 200
    passwords = Passwords(memory_kib=8 * 1024, time_cost=1, threads=1)
    try:
        _, key = await AuthService(db, settings, passwords).create_api_key(
            ed, "ed's script", Scope.READ
        )
    finally:
        passwords.close()
    bearer = {"Authorization": f"Bearer {key}"}
    assert (await editor_client.get("/api/v1/me", headers=bearer)).status_code == 200
    token = await editor_client.post(
        "/api/v1/auth/token", data={"username": "ed", "password": PASSWORD}
    )
    assert token.status_code == 200, token.text
    jwt_bearer = {"Authorization": f"Bearer {token.json()['access_token']}"}
    assert (await editor_client.get("/api/v1/me", headers=jwt_bearer)).status_code == 200

    disabled = await post(admin_client, f"/admin/users/{ed}/disable")
    assert (disabled.status_code, disabled.headers["location"]) == (303, f"/admin/users/{ed}")
    assert await row(db, "ed") == ("editor", True)
    page = await editor_client.get("/admin/dashboard")
    assert (page.status_code, page.headers["location"]) == (303, "/login")
    assert (await editor_client.get("/api/v1/me", headers=bearer)).status_code == 401
    assert (await editor_client.get("/api/v1/me", headers=jwt_bearer)).status_code == 401
    page = await editor_client.get("/login")
    match = CSRF.search(page.text)
    assert match
    login = await editor_client.post(
        "/login", data={"username": "ed", "password": PASSWORD, "csrf_token": match.group(1)}
    )
    assert login.headers["location"] == "/login"
    assert "Authentication failed" in (await editor_client.get("/login")).text
    assert "disabled" in (await admin_client.get(f"/admin/users/{ed}")).text

    # Enabled again: the password and the API key work again.
    assert (await post(admin_client, f"/admin/users/{ed}/enable")).status_code == 303
    assert (await editor_client.get("/api/v1/me", headers=bearer)).status_code == 200
    await log_in(editor_client, "ed")


async def test_an_admin_resets_a_password_and_the_users_sessions_end(
    admin_client: httpx.AsyncClient, editor_client: httpx.AsyncClient, db: Database
) -> None:
    await create_user(admin_client, "ed")
    ed = await user_id(db, "ed")
    await log_in(editor_client, "ed")
    path = f"/admin/users/{ed}/password"
    mismatch = await post(
        admin_client, path, new_password=NEW_PASSWORD, new_password_check="x" * 20
    )
    assert mismatch.headers["location"] == f"/admin/users/{ed}"
    assert "two different new passwords" in (await admin_client.get(f"/admin/users/{ed}")).text
    short = await post(admin_client, path, new_password="short", new_password_check="short")
    assert "too short" in (await admin_client.get(f"/admin/users/{ed}")).text
    assert short.status_code == 303
    assert (await editor_client.get("/admin/dashboard")).status_code == 200  # nothing changed

    reset = await post(
        admin_client, path, new_password=NEW_PASSWORD, new_password_check=NEW_PASSWORD
    )
    assert reset.headers["location"] == f"/admin/users/{ed}"
    assert "their sessions have ended" in (await admin_client.get(f"/admin/users/{ed}")).text
    assert (await editor_client.get("/admin/dashboard")).status_code == 303
    page = await editor_client.get("/login")
    match = CSRF.search(page.text)
    assert match
    ok = await editor_client.post(
        "/login", data={"username": "ed", "password": NEW_PASSWORD, "csrf_token": match.group(1)}
    )
    assert ok.headers["location"] == "/admin/dashboard"


ADMIN_PAGES = [
    "/admin/users",
    "/admin/api-keys",
    "/admin/settings",
    "/admin/settings/sender",
    "/admin/settings/configuration",
]


async def test_an_editor_gets_403_on_admin_pages_but_publishes_and_sees_subscribers(
    admin_client: httpx.AsyncClient, editor_client: httpx.AsyncClient, db: Database
) -> None:
    await create_user(admin_client, "ed")
    ed = await user_id(db, "ed")
    await log_in(editor_client, "ed")
    dashboard = await editor_client.get("/admin/dashboard")
    assert 'href="/admin/settings"' not in dashboard.text
    assert 'href="/admin/api-keys"' not in dashboard.text
    assert 'href="/admin/users"' not in dashboard.text
    assert 'href="/admin/password"' in dashboard.text  # their own password stays theirs
    for path in [*ADMIN_PAGES, f"/admin/users/{ed}"]:
        refused = await editor_client.get(path, headers={"accept": "text/html"})
        assert refused.status_code == 403, path
        assert ADMINS_ONLY in refused.text, path
    token = await csrf(editor_client, "/admin/password")
    for path, data in [
        ("/admin/users", {"username": "sneaky", "password": PASSWORD, "role": "admin"}),
        (f"/admin/users/{ed}/role", {"role": "admin"}),
        ("/admin/api-keys", {"name": "mine", "scope": "write"}),
        ("/admin/profile", {"seconds": "1", "format": "html"}),
    ]:
        response = await editor_client.post(path, data={"csrf_token": token, **data})
        assert response.status_code == 403, path
    assert await row(db, "ed") == ("editor", False)
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == 0
    password_page = await editor_client.get("/admin/password")
    assert password_page.status_code == 200
    assert 'href="/admin/users"' not in password_page.text

    [reader] = await add_subscribers(db, 1)
    assert (await editor_client.get("/admin/subscribers")).status_code == 200
    assert (await editor_client.get(f"/admin/subscribers/{reader}")).status_code == 200
    token = await csrf(editor_client, f"/admin/subscribers/{reader}")
    unsubscribed = await editor_client.post(
        f"/admin/subscribers/{reader}/unsubscribe", data={"csrf_token": token}
    )
    assert unsubscribed.status_code == 303
    async with db.connection() as conn:
        status = await conn.fetchval("SELECT status FROM subscriptions WHERE id = $1", reader)
    assert status == "unsubscribed"
    assert (await editor_client.get("/admin/issues")).status_code == 200
    form = await newsletter_form(editor_client)
    published = await editor_client.post(
        "/admin/newsletters",
        data={"title": "By ed", "text_content": "Hi", "html_content": "<p>Hi</p>", **form},
    )
    assert published.status_code == 303
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM newsletter_issues") == 1


async def test_the_settings_pages_show_the_sender_and_never_a_secret(
    monkeypatch: pytest.MonkeyPatch, database_url: str, db: Database
) -> None:
    parts = urlsplit(database_url)
    db_password = parts.password
    if db_password is None:  # trust authentication: a password in the URL is ignored
        db_password = "db-pw-" + uuid.uuid4().hex
        netloc = f"{parts.username or 'postgres'}:{db_password}@{parts.hostname}"
        netloc += f":{parts.port}" if parts.port else ""
        database_url = urlunsplit(parts._replace(netloc=netloc))
    secrets = {
        "HERALD_SECRET_KEY": "secret-key-" + uuid.uuid4().hex,
        "HERALD_EMAIL__POSTMARK__SERVER_TOKEN": "pm-token-" + uuid.uuid4().hex,
        "HERALD_EMAIL__SMTP__PASSWORD": "smtp-pw-" + uuid.uuid4().hex,
    }
    for name, value in secrets.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("HERALD_EMAIL__SENDER", "Herald News <news@example.com>")
    monkeypatch.setenv("HERALD_EMAIL__SMTP__HOST", "smtp.example.com")
    settings = make_settings(database_url, secret_key=secrets["HERALD_SECRET_KEY"])
    assert settings.email.postmark.server_token is not None  # the environment was read
    from tests.support.newsletters import create_admin

    await create_admin(db, settings)
    app = create_app(settings, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            await log_in(c)
            pages = {path: await c.get(path) for path in ADMIN_PAGES}
    for path, response in pages.items():
        assert response.status_code == 200, path
        for secret in [*secrets.values(), db_password]:
            assert secret not in response.text, (path, secret)
    config = html.unescape(pages["/admin/settings/configuration"].text)
    for name in [*secrets, "HERALD_DATABASE_URL"]:
        assert re.search(rf'data-env="{name}"><span class="status[^"]*">set<', config), name
    assert re.search(r'data-env="HERALD_DIRECT_DATABASE_URL"><span class="status">not set<', config)
    assert "smtp.example.com" in config
    assert "HERALD_DELIVERY__BATCH_SIZE" in config
    sender = html.unescape(pages["/admin/settings/sender"].text)
    assert "news@example.com" in sender
    assert "Herald News" in sender
    assert "news@example.com" in pages["/admin/settings"].text
    assert Role.ADMIN.value in pages["/admin/users"].text


async def test_the_cli_creates_editors_and_still_admins_by_default(
    monkeypatch: pytest.MonkeyPatch, database_url: str, db: Database, tmp_path: object
) -> None:
    import asyncio

    from typer.testing import CliRunner

    from herald.composition.cli.main import app

    monkeypatch.setenv("HERALD_DATABASE_URL", database_url)
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    for args in (["users", "create", "ed", "--role", "editor"], ["users", "create", "boss"]):
        result = await asyncio.to_thread(
            runner.invoke, app, [*args, "--password-stdin"], input=PASSWORD + "\n"
        )
        assert result.exit_code == 0, result.output
        assert f"user {args[2]} created" in result.output
    bad = await asyncio.to_thread(
        runner.invoke, app, ["users", "create", "x", "--role", "owner", "--password-stdin"]
    )
    assert bad.exit_code != 0
    assert await row(db, "ed") == ("editor", False)
    assert await row(db, "boss") == ("admin", False)


async def test_an_editor_cannot_manage_api_keys_through_the_json_api_either(
    admin_client: httpx.AsyncClient, editor_client: httpx.AsyncClient, db: Database
) -> None:
    await create_user(admin_client, "ed")
    granted = await editor_client.post(
        "/api/v1/auth/token",
        data={"username": "ed", "password": PASSWORD, "grant_type": "password"},
    )
    assert granted.status_code == 200, granted.text
    bearer = {"Authorization": f"Bearer {granted.json()['access_token']}"}
    assert (await editor_client.get("/api/v1/me", headers=bearer)).status_code == 200
    for method, path, body in [
        ("GET", "/api/v1/api-keys", None),
        ("POST", "/api/v1/api-keys", {"name": "mine", "scope": "write"}),
        ("DELETE", f"/api/v1/api-keys/{uuid.uuid4()}", None),
    ]:
        refused = await editor_client.request(method, path, json=body, headers=bearer)
        assert refused.status_code == 403, (path, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM api_keys") == 0
