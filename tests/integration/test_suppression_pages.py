"""``/admin/suppressions``: counts by reason, search, add (editors too), remove (admins
only; never an erasure)."""

from __future__ import annotations

import html
import re

import httpx

from herald.core.config import Settings
from herald.core.db import Database
from herald.suppressions.service import SuppressionList
from tests.support.newsletters import CSRF, add_subscribers, create_admin, log_in

FLASH = re.compile(r'<p class="(?:flash|error)" role="status">([^<]*)</p>')


async def csrf_of(client: httpx.AsyncClient, url: str = "/admin/suppressions") -> str:
    page = await client.get(url)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found
    return found.group(1)


async def flashes(client: httpx.AsyncClient) -> list[str]:
    page = await client.get("/admin/suppressions")
    return [html.unescape(m) for m in FLASH.findall(page.text)]


async def emails(db: Database) -> list[tuple[str | None, str]]:
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT email, reason FROM suppressions ORDER BY email")
    return [(r["email"], r["reason"]) for r in rows]


async def test_an_admin_adds_searches_and_removes(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    await add_subscribers(db, 1)
    page = await admin_client.get("/admin/suppressions")
    assert "The suppression list is empty." in page.text
    assert 'aria-current="page">Subscribers' in page.text  # under Subscribers in the nav
    csrf = await csrf_of(admin_client)
    added = await admin_client.post(
        "/admin/suppressions",
        data={"csrf_token": csrf, "email": " Reader0@example.com ", "reason": "complaint"},
    )
    assert added.status_code == 303
    assert await flashes(admin_client) == ["Reader0@example.com added to the suppression list."]
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT status FROM subscriptions") == "unsubscribed"
    again = await admin_client.post(
        "/admin/suppressions", data={"csrf_token": csrf, "email": "reader0@example.com"}
    )
    assert again.status_code == 303
    assert await flashes(admin_client) == [
        "Reader0@example.com was already on the suppression list."
    ]

    found = await admin_client.get("/admin/suppressions?q=READER0&reason=complaint")
    assert "Reader0@example.com" in found.text
    assert 'Complaint <span class="count">1</span>' in found.text
    none = await admin_client.get("/admin/suppressions?q=nobody")
    assert "No suppression matches." in none.text

    removed = await admin_client.post(
        "/admin/suppressions/remove", data={"csrf_token": csrf, "email": "reader0@example.com"}
    )
    assert removed.status_code == 303
    assert await emails(db) == []


async def test_bad_input_is_flashed_naming_the_field(admin_client: httpx.AsyncClient) -> None:
    csrf = await csrf_of(admin_client)
    for data, words in (
        ({"email": "nope"}, "not a valid email address"),
        ({"email": "a@example.com", "reason": "erased"}, "reason"),
        ({"email": "a@example.com", "reason": "x" * 300}, "reason must be one of"),
    ):
        response = await admin_client.post("/admin/suppressions", data={"csrf_token": csrf, **data})
        assert response.status_code == 303
        assert words in " ".join(await flashes(admin_client))
    missing = await admin_client.post(
        "/admin/suppressions/remove", data={"csrf_token": csrf, "email": "a@example.com"}
    )
    assert missing.status_code == 303
    assert await flashes(admin_client) == ["this address is not on the suppression list"]
    for query in ("after=garbage", "after=%00", "reason=bogus", "q=" + "x" * 399):
        response = await admin_client.get(f"/admin/suppressions?{query}")
        assert response.status_code in {303, 400}, (query, response.status_code)
    forged = await admin_client.post(
        "/admin/suppressions", data={"csrf_token": "forged", "email": "a@example.com"}
    )
    assert forged.status_code == 403


async def test_an_erasure_shows_no_address_and_cannot_be_removed(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    [reader] = await add_subscribers(db, 1)
    csrf = await csrf_of(admin_client, f"/admin/subscribers/{reader}")
    await admin_client.post(f"/admin/subscribers/{reader}/delete", data={"csrf_token": csrf})
    page = await admin_client.get("/admin/suppressions")
    assert "address erased" in page.text
    assert "cannot be lifted" in page.text
    assert "reader0@example.com" not in page.text
    found = await admin_client.get("/admin/suppressions?q=reader0@example.com")
    assert "address erased" in found.text
    refused = await admin_client.post(
        "/admin/suppressions/remove",
        data={"csrf_token": await csrf_of(admin_client), "email": "reader0@example.com"},
    )
    assert refused.status_code == 303
    assert "erased at the reader's request" in " ".join(await flashes(admin_client))
    assert await emails(db) == [(None, "erased")]


async def test_an_editor_adds_but_cannot_remove(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await create_admin(db, settings, "admin")
    from herald.auth.domain import Role
    from herald.auth.passwords import Passwords
    from herald.auth.service import AuthService
    from tests.support.newsletters import PASSWORD

    passwords = Passwords(memory_kib=8 * 1024, time_cost=1, threads=1)
    try:
        await AuthService(db, settings, passwords).create_user("ed", PASSWORD, Role.EDITOR)
    finally:
        passwords.close()
    await log_in(client, "ed")
    await SuppressionList(db).add("kept@example.com")
    page = await client.get("/admin/suppressions")
    assert page.status_code == 200
    assert "kept@example.com" in page.text
    assert ">Remove<" not in page.text
    csrf = await csrf_of(client)
    added = await client.post(
        "/admin/suppressions", data={"csrf_token": csrf, "email": "new@example.com"}
    )
    assert added.status_code == 303
    refused = await client.post(
        "/admin/suppressions/remove", data={"csrf_token": csrf, "email": "kept@example.com"}
    )
    assert refused.status_code == 403
    assert await emails(db) == [("kept@example.com", "manual"), ("new@example.com", "manual")]
