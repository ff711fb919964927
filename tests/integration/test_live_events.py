"""Every change of a subscriber's status announces exactly one ``herald_live`` event of
its type, in step with the dashboard's figures (``subscriber_daily``, kept by triggers):
a sign-up (a new address, or an unsubscribed one signing up again) is one
``subscriber.created``, a confirmation one ``subscriber.confirmed``, an unsubscribe one
``subscriber.unsubscribed``, a deletion one ``subscriber.deleted``; what changes no figure
(a pending or confirmed address signing up again, a second click, a second unsubscribe)
announces nothing. Heard through a LISTEN of its own, as a web process would.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.live import CHANNEL
from herald.subscriptions.unsubscribe import make_token
from tests.integration.test_subscriptions import confirmation_link, status_of
from tests.support.newsletters import CSRF, create_admin, log_in

SENTINEL = "test.sentinel"
# The figure each event type moves (subscriber_daily's columns).
FIGURE = {
    "subscriber.created": "subscribed",
    "subscriber.confirmed": "confirmed",
    "subscriber.unsubscribed": "unsubscribed",
    "subscriber.deleted": "deleted",
}


class Heard:
    """The ``herald_live`` events since the last :meth:`take`."""

    def __init__(self, conn: asyncpg.Connection, db: Database) -> None:
        self._conn = conn
        self._db = db
        self._events: list[dict[str, Any]] = []
        self._sentinel = asyncio.Event()

    def on_notify(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        data = json.loads(payload)
        if data["type"] == SENTINEL:
            self._sentinel.set()
        else:
            self._events.append(data)

    async def take(self) -> list[dict[str, Any]]:
        """Everything announced by what has committed so far: a sentinel NOTIFYed after
        it arrives after it (Postgres delivers notifications in commit order)."""
        self._sentinel.clear()
        async with self._db.connection() as conn:
            await conn.execute("SELECT pg_notify($1, $2)", CHANNEL, json.dumps({"type": SENTINEL}))
        await asyncio.wait_for(self._sentinel.wait(), 10)
        taken, self._events = self._events, []
        return taken


@pytest.fixture
async def heard(database_url: str, db: Database) -> AsyncIterator[Heard]:
    conn = await asyncpg.connect(database_url)
    listening = Heard(conn, db)
    await conn.add_listener(CHANNEL, listening.on_notify)
    try:
        yield listening
    finally:
        await conn.close()


async def figures(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT coalesce(sum(subscribed), 0) AS subscribed,"
            " coalesce(sum(confirmed), 0) AS confirmed,"
            " coalesce(sum(unsubscribed), 0) AS unsubscribed,"
            " coalesce(sum(deleted), 0) AS deleted FROM subscriber_daily"
        )
    assert row is not None
    return {key: int(row[key]) for key in FIGURE.values()}


class Steps:
    """Run a step; check the events it announced against the figures it moved."""

    def __init__(self, heard: Heard, db: Database) -> None:
        self.heard = heard
        self.db = db
        self._figures: dict[str, int] = {}

    async def expect(self, events: list[tuple[str, uuid.UUID]]) -> list[dict[str, Any]]:
        before = self._figures
        self._figures = await figures(self.db)
        got = await self.heard.take()
        assert [(e["type"], e["subscriber_id"]) for e in got] == [
            (kind, str(subscriber)) for kind, subscriber in events
        ]
        moved = {key: self._figures[key] - before[key] for key in before}
        announced = dict.fromkeys(FIGURE.values(), 0)
        for kind, _ in events:
            announced[FIGURE[kind]] += 1
        assert moved == announced, "the events and the dashboard's figures disagree"
        return got

    async def start(self) -> list[dict[str, Any]]:
        """From here on; what was heard before."""
        self._figures = await figures(self.db)
        return await self.heard.take()


async def subscribe(client: httpx.AsyncClient, email: str, name: str = "Ada") -> None:
    answer = await client.post("/subscriptions", data={"name": name, "email": email})
    assert answer.status_code == 200, answer.text


async def subscriber_id(db: Database, email: str) -> uuid.UUID:
    async with db.connection() as conn:
        found: uuid.UUID = await conn.fetchval(
            "SELECT id FROM subscriptions WHERE lower(email) = lower($1)", email
        )
    return found


async def test_each_sign_up_confirmation_unsubscribe_and_deletion_is_one_event(
    client: httpx.AsyncClient, db: Database, settings: Settings, heard: Heard
) -> None:
    steps = Steps(heard, db)
    assert await steps.start() == []
    email = "ada@example.com"

    await subscribe(client, email)  # a new address
    ada = await subscriber_id(db, email)
    [created] = await steps.expect([("subscriber.created", ada)])
    assert set(created) == {"type", "subscriber_id"}  # ids only: no address, no name

    await subscribe(client, email, name="Ada L.")  # pending, again: a second email only
    await steps.expect([])

    link = await confirmation_link(db, email)
    assert (await client.get(link)).status_code == 200
    await steps.expect([("subscriber.confirmed", ada)])
    assert (await client.get(link)).status_code == 200  # a second click
    await subscribe(client, email)  # confirmed, signing up again
    await steps.expect([])

    unsubscribe = f"/unsubscribe/one-click?token={make_token(settings, ada)}"
    assert (await client.post(unsubscribe)).status_code == 200
    await steps.expect([("subscriber.unsubscribed", ada)])
    assert (await client.post(unsubscribe)).status_code == 200  # twice: nothing new
    await steps.expect([])

    # Unsubscribed, then signing up again: a sign-up like a new address's, with a flag for
    # the dashboard (its unsubscribed tile goes down by one).
    await subscribe(client, email)
    assert await status_of(db, email) == "pending_confirmation"
    [again] = await steps.expect([("subscriber.created", ada)])
    assert again == {"type": "subscriber.created", "subscriber_id": str(ada), "resubscribed": True}
    link = await confirmation_link(db, email)
    assert (await client.get(link)).status_code == 200
    await steps.expect([("subscriber.confirmed", ada)])

    await create_admin(db, settings)
    await log_in(client)
    url = f"/admin/subscribers/{ada}"
    csrf = CSRF.search((await client.get(url)).text)
    assert csrf
    deleted = await client.post(f"{url}/delete", data={"csrf_token": csrf.group(1)})
    assert deleted.status_code == 303, deleted.text
    await steps.expect([("subscriber.deleted", ada)])


async def test_a_throttled_sign_up_from_unsubscribed_still_announces_itself(
    client: httpx.AsyncClient, db: Database, settings: Settings, heard: Heard
) -> None:
    """Past the day's confirmation emails the address still goes back to pending (a
    sign-up in the figures) without a new email: the event follows the figures."""
    limit = settings.subscriptions.max_confirmations_per_day
    email = "bea@example.com"
    for _ in range(limit):
        await subscribe(client, email)
    bea = await subscriber_id(db, email)
    unsubscribe = f"/unsubscribe/one-click?token={make_token(settings, bea)}"
    assert (await client.post(unsubscribe)).status_code == 200
    steps = Steps(heard, db)
    await steps.start()
    await subscribe(client, email)
    assert await status_of(db, email) == "pending_confirmation"
    await steps.expect([("subscriber.created", bea)])
