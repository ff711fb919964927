"""An erased reader stays erased: the preference centre's "erase me" leaves only the
address's key, and that key refuses a form sign-up and an API create of the same address
in another case or with spaces around it — nothing created, nothing sent."""

from __future__ import annotations

import httpx

from herald.core.config import Settings
from herald.core.db import Database
from herald.subscriptions.unsubscribe import make_token
from tests.support.api import make_keys
from tests.support.newsletters import CSRF, add_subscribers


async def counts(db: Database) -> tuple[int, int, int]:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM subscriptions) AS s,"
            " (SELECT count(*) FROM deliveries WHERE status IN ('queued', 'sending')) AS d,"
            " (SELECT count(*) FROM suppressions WHERE email IS NULL AND reason = 'erased') AS e"
        )
    assert row is not None
    return row["s"], row["d"], row["e"]


async def test_an_erased_address_is_never_created_or_mailed_again(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1, prefix="erin")
    token = make_token(settings, reader)
    page = await client.get(f"/preferences/erase?token={token}")
    csrf = CSRF.search(page.text)
    assert csrf
    erased = await client.post(
        f"/preferences/erase?token={token}", data={"csrf_token": csrf.group(1), "confirm": "yes"}
    )
    assert erased.status_code == 200
    assert await counts(db) == (0, 0, 1)

    signup = await client.post(
        "/subscriptions", data={"name": "Erin", "email": "  ERIN0@Example.COM "}
    )
    assert signup.status_code == 200  # answered as usual: the form reveals nothing
    assert await counts(db) == (0, 0, 1)

    keys = await make_keys(db, settings)
    created = await client.post(
        "/api/v1/subscribers",
        json={"email": "Erin0@EXAMPLE.com", "name": "Erin"},
        headers=keys.admin_write,
    )
    assert created.status_code == 409
    assert await counts(db) == (0, 0, 1)


async def test_a_re_import_of_an_erased_or_unsubscribed_reader_mails_nobody(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    from herald.imports.domain import Mode
    from tests.integration.test_imports import run_import

    erin, una = await add_subscribers(db, 2, prefix="reader")
    token = make_token(settings, erin)
    page = await client.get(f"/preferences/erase?token={token}")
    csrf = CSRF.search(page.text)
    assert csrf
    await client.post(
        f"/preferences/erase?token={token}", data={"csrf_token": csrf.group(1), "confirm": "yes"}
    )
    gone = await client.post(
        f"/unsubscribe/one-click?token={make_token(settings, una)}",
        data={"List-Unsubscribe": "One-Click"},
    )
    assert gone.status_code == 200
    async with db.connection() as conn:
        await conn.execute("DELETE FROM subscriptions WHERE id = $1", una)  # even if deleted
    csv = b"email,name\n READER0@Example.com ,Erin\nreader1@EXAMPLE.com,Una\n"
    for mode in (Mode.CONFIRMED, Mode.OPT_IN):
        view = await run_import(db, settings, csv, mode=mode)
        assert (view.record.counts.imported, view.record.counts.skipped) == (0, 2)
    assert await counts(db) == (0, 0, 1)
