"""The preference centre: ``/preferences?token=…`` — the signed link of every email."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlencode

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.subscriptions.unsubscribe import make_token
from tests.support.newsletters import CSRF, add_subscribers

BROWSER = {"User-Agent": "Mozilla/5.0 (test)"}


async def make_list(db: Database, slug: str, *, private: bool = False) -> uuid.UUID:
    async with db.connection() as conn:
        list_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO lists (slug, name, description, visibility) VALUES ($1, $2, $3, $4)"
            " RETURNING id",
            slug,
            slug.title(),
            f"All about {slug}",
            "private" if private else "public",
        )
    return list_id


async def memberships(db: Database, reader: uuid.UUID) -> dict[str, tuple[str, str]]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT l.slug, m.status, m.source FROM list_memberships m"
            " JOIN lists l ON l.id = m.list_id WHERE m.subscriber_id = $1",
            reader,
        )
    return {r["slug"]: (r["status"], r["source"]) for r in rows}


async def address(db: Database, reader: uuid.UUID) -> tuple[str | None, str | None]:
    async with db.connection() as conn:
        status = await conn.fetchval("SELECT status FROM subscriptions WHERE id = $1", reader)
        reason = await conn.fetchval(
            "SELECT reason FROM suppressions WHERE address_key = herald_address_key($1)",
            "reader0@example.com",
        )
    return status, reason


async def open_page(client: httpx.AsyncClient, url: str) -> tuple[httpx.Response, str]:
    page = await client.get(url, headers=BROWSER)
    assert page.status_code == 200, page.text
    csrf = CSRF.search(page.text)
    assert csrf
    return page, csrf.group(1)


async def test_the_page_shows_the_reader_s_lists_privately(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1)
    await make_list(db, "news")
    secret = await make_list(db, "insiders", private=True)
    await make_list(db, "hidden", private=True)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
            " VALUES ($1, $2, 'confirmed', 'test')",
            secret,
            reader,
        )
    url = f"/preferences?token={make_token(settings, reader)}"
    page, _ = await open_page(client, url)
    assert "reader0@example.com" in page.text
    for shown in ("Newsletter", "News", "Insiders", "All about news"):
        assert shown in page.text
    assert "Hidden" not in page.text  # private, and not theirs
    assert 'name="robots" content="noindex' in page.text
    assert page.headers["x-robots-tag"].startswith("noindex")
    assert page.headers["referrer-policy"] == "same-origin"  # no-referrer: Origin null
    assert "no-store" in page.headers["cache-control"]
    assert 'value="default" checked' in page.text
    assert 'value="news">' in page.text  # not a member: unticked


@pytest.mark.parametrize(
    "token", ["", "garbage", "AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA", "é" * 40, "x" * 9000]
)
async def test_a_forged_or_garbled_token_is_a_400_page(
    client: httpx.AsyncClient, token: str
) -> None:
    for method, path in (
        ("GET", "/preferences"),
        ("POST", "/preferences"),
        ("POST", "/preferences/unsubscribe"),
        ("POST", "/preferences/data"),
        ("GET", "/preferences/erase"),
        ("POST", "/preferences/erase"),
    ):
        response = await client.request(
            method, path, params={"token": token}, headers={"Accept": "text/html"}
        )
        assert response.status_code in {400, 403}, (method, path, response.status_code)
        if method == "GET":
            assert response.status_code == 400
            assert "not valid" in response.text


async def test_a_reader_who_is_gone_is_a_404(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    response = await client.get(f"/preferences?token={make_token(settings, uuid.uuid4())}")
    assert response.status_code == 404
    # Every route: nothing to manage (an erasure is done already), and nothing written.
    _, csrf = await open_page(client, "/")
    token = make_token(settings, uuid.uuid4())
    for method, path, expected in (
        ("GET", "/preferences/erase", 404),
        ("POST", "/preferences", 404),
        ("POST", "/preferences/unsubscribe", 404),
        ("POST", "/preferences/data", 404),
        ("POST", "/preferences/erase", 200),
    ):
        data = {"csrf_token": csrf, "list": ["default"], "confirm": "yes"}
        response = await client.request(
            method, path, params={"token": token}, data=data if method == "POST" else None
        )
        assert response.status_code == expected, (method, path, response.status_code)
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_joining_and_leaving_lists(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1)
    await make_list(db, "news")
    await make_list(db, "hidden", private=True)
    url = f"/preferences?token={make_token(settings, reader)}"
    _, csrf = await open_page(client, url)
    saved = await client.post(url, data={"csrf_token": csrf, "list": ["news"]}, headers=BROWSER)
    assert saved.status_code == 303
    assert saved.headers["location"] == url
    assert await memberships(db, reader) == {
        "default": ("unsubscribed", "subscribe"),
        "news": ("confirmed", "preferences"),
    }
    async with db.connection() as conn:
        consent = await conn.fetchrow(
            "SELECT consent_ip::text AS ip, consent_user_agent AS ua, confirmed_at"
            " FROM list_memberships m JOIN lists l ON l.id = m.list_id WHERE l.slug = 'news'"
        )
    assert consent["ua"] == "Mozilla/5.0 (test)"
    assert consent["confirmed_at"] is not None
    page, _ = await open_page(client, url)
    assert "Your preferences have been saved." in page.text

    for refused in (["hidden"], ["nope"], ["x" * 500]):
        bad = await client.post(url, data={"csrf_token": csrf, "list": refused})
        assert bad.status_code == 400
        assert "list" in bad.text
    forged = await client.post(url, data={"csrf_token": "forged", "list": ["default"]})
    assert forged.status_code == 403
    assert (await memberships(db, reader))["default"][0] == "unsubscribed"


async def test_saving_writes_no_row_for_a_list_the_reader_never_joined(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    # Every public list is on the page, unticked for a reader who is not in it: saving
    # must not write an "unsubscribed" membership for each (200 public lists: 200 rows
    # a save, counted as members of lists they never joined).
    [reader] = await add_subscribers(db, 1)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO lists (slug, name, description, visibility)"
            " SELECT 'l' || n, 'List ' || n, '', 'public' FROM generate_series(1, 200) AS n"
        )
    url = f"/preferences?token={make_token(settings, reader)}"
    _, csrf = await open_page(client, url)
    for chosen in (["default", "l7"], ["l7"], []):
        saved = await client.post(url, data={"csrf_token": csrf, "list": chosen})
        assert saved.status_code == 303
    assert await memberships(db, reader) == {
        "default": ("unsubscribed", "subscribe"),
        "l7": ("unsubscribed", "preferences"),
    }


async def test_unsubscribe_from_all_then_come_back_from_here(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1)
    url = f"/preferences?token={make_token(settings, reader)}"
    _, csrf = await open_page(client, url)
    gone = await client.post(
        f"/preferences/unsubscribe?token={make_token(settings, reader)}",
        data={"csrf_token": csrf},
    )
    assert gone.status_code == 303
    assert await address(db, reader) == ("unsubscribed", "unsubscribed")
    page, _ = await open_page(client, url)
    assert "You are unsubscribed from everything" in page.text
    assert 'value="default" checked' not in page.text

    back = await client.post(url, data={"csrf_token": csrf, "list": ["default"]})
    assert back.status_code == 303
    assert await address(db, reader) == ("confirmed", None)  # the link proves the address
    assert (await memberships(db, reader))["default"] == ("confirmed", "preferences")


async def test_an_operator_s_suppression_is_not_lifted_from_here(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1)
    from herald.suppressions.service import SuppressionList

    await SuppressionList(db).add("reader0@example.com")
    url = f"/preferences?token={make_token(settings, reader)}"
    _, csrf = await open_page(client, url)
    refused = await client.post(url, data={"csrf_token": csrf, "list": ["default"]})
    assert refused.status_code == 409
    assert "suppression list" in refused.text
    assert await address(db, reader) == ("unsubscribed", "manual")


async def test_download_my_data(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1)
    async with db.connection() as conn:
        await conn.execute(
            'UPDATE subscriptions SET attributes = \'{"city": "Lyon", "vip": true}\''
        )
        await conn.execute(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, status, max_attempts)"
            " VALUES ('confirmation', 'reader0@example.com', $1, 'sent', 5)",
            reader,
        )
    url = f"/preferences?token={make_token(settings, reader)}"
    _, csrf = await open_page(client, url)
    response = await client.post(
        f"/preferences/data?token={make_token(settings, reader)}", data={"csrf_token": csrf}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["content-disposition"].startswith("attachment")
    assert "no-store" in response.headers["cache-control"]
    data = json.loads(response.text)
    assert data["subscriber"]["email"] == "reader0@example.com"
    assert data["subscriber"]["attributes"] == {"city": "Lyon", "vip": True}
    assert [(m["list"], m["status"], m["consent"]["source"]) for m in data["lists"]] == [
        ("default", "confirmed", "subscribe")
    ]
    assert data["deliveries"]["counts"] == [{"kind": "confirmation", "status": "sent", "count": 1}]
    assert data["deliveries"]["recent"][0]["kind"] == "confirmation"
    assert data["suppression"] is None
    no_csrf = await client.post(f"/preferences/data?token={make_token(settings, reader)}")
    assert no_csrf.status_code == 403


async def test_erase_me_asks_first_then_forgets_the_reader(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1)
    token = make_token(settings, reader)
    confirm, csrf = await open_page(client, f"/preferences/erase?token={token}")
    assert "Erase your data?" in confirm.text
    not_yet = await client.post(f"/preferences/erase?token={token}", data={"csrf_token": csrf})
    assert not_yet.status_code == 200
    assert "Erase your data?" in not_yet.text
    assert (await address(db, reader))[0] == "confirmed"
    for _ in range(2):  # idempotent
        done = await client.post(
            f"/preferences/erase?token={token}", data={"csrf_token": csrf, "confirm": "yes"}
        )
        assert done.status_code == 200
        assert "Your data has been erased" in done.text
        assert done.headers["x-robots-tag"].startswith("noindex")
    assert await address(db, reader) == (None, "erased")
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT email, source FROM suppressions")
    assert tuple(row) == (None, "preferences")
    assert (await client.get(f"/preferences?token={token}")).status_code == 404


async def test_hostile_forms_are_4xx_never_500(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1)
    url = f"/preferences?token={make_token(settings, reader)}"
    _, csrf = await open_page(client, url)
    too_many = [("csrf_token", csrf)] + [("list", "default")] * 1500
    for data, expected in (
        (too_many, {400}),
        ([("csrf_token", csrf), ("list", "x" * 70_000)], {413}),
        ([("csrf_token", csrf), ("list", "de\x00fault")], {400}),
        ([("csrf_token", csrf), ("list", "default"), ("list", "default")], {303}),
    ):
        response = await client.post(
            url,
            content=urlencode(data),
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert response.status_code in expected, (response.status_code, response.text[:200])
    json_body = await client.post(url, json={"list": ["default"]})
    assert json_body.status_code in {403, 415}


async def test_saving_while_being_erased_never_fails_with_a_500(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    import asyncio

    readers = await add_subscribers(db, 10)
    await make_list(db, "news")
    _, csrf = await open_page(client, f"/preferences?token={make_token(settings, readers[0])}")

    async def save(reader: uuid.UUID) -> int:
        url = f"/preferences?token={make_token(settings, reader)}"
        return (await client.post(url, data={"csrf_token": csrf, "list": ["news"]})).status_code

    async def erase(reader: uuid.UUID) -> int:
        token = make_token(settings, reader)
        response = await client.post(
            f"/preferences/erase?token={token}", data={"csrf_token": csrf, "confirm": "yes"}
        )
        return response.status_code

    results = await asyncio.gather(*(f(r) for r in readers for f in (save, erase)))
    assert set(results[0::2]) <= {303, 404}
    assert set(results[1::2]) == {200}
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM subscriptions") == 0
        assert await conn.fetchval("SELECT count(*) FROM list_memberships") == 0
        assert await conn.fetchval("SELECT count(*) FROM suppressions WHERE email IS NULL") == 10
