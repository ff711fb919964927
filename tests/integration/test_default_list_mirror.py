"""Migration 0018's compatibility trigger: code that writes only ``subscriptions`` (the
previous release) keeps its readers in the default list, and new code that writes a
subscription with its memberships in one statement gets no default-list row it did not
ask for."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def _memberships(conn: asyncpg.Connection, subscriber_id: uuid.UUID) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT l.slug, m.status FROM list_memberships m JOIN lists l ON l.id = m.list_id"
        " WHERE m.subscriber_id = $1 ORDER BY l.slug",
        subscriber_id,
    )
    return [(r["slug"], r["status"]) for r in rows]


async def _other_list(conn: asyncpg.Connection) -> uuid.UUID:
    list_id: uuid.UUID = await conn.fetchval(
        "INSERT INTO lists (slug, name) VALUES ('other', 'Other') RETURNING id"
    )
    return list_id


async def test_an_old_style_insert_joins_the_default_list(conn: asyncpg.Connection) -> None:
    sid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO subscriptions (id, email, name, status) VALUES ($1, 'a@example.com', 'A',"
        " 'pending_confirmation')",
        sid,
    )
    assert await _memberships(conn, sid) == [("default", "pending_confirmation")]

    await conn.execute(
        "UPDATE subscriptions SET status = 'confirmed', confirmed_at = now() WHERE id = $1", sid
    )
    assert await _memberships(conn, sid) == [("default", "confirmed")]

    await conn.execute("UPDATE subscriptions SET status = 'unsubscribed' WHERE id = $1", sid)
    assert await _memberships(conn, sid) == [("default", "unsubscribed")]


async def test_a_new_style_insert_keeps_only_the_lists_it_wrote(conn: asyncpg.Connection) -> None:
    other = await _other_list(conn)
    sid = uuid.uuid4()
    await conn.execute(
        """
        WITH s AS (
            INSERT INTO subscriptions (id, email, name, status)
            VALUES ($1, 'b@example.com', 'B', 'pending_confirmation') RETURNING id
        )
        INSERT INTO list_memberships (list_id, subscriber_id, status, source)
        SELECT $2, id, 'pending_confirmation', 'test' FROM s
        """,
        sid,
        other,
    )
    assert await _memberships(conn, sid) == [("other", "pending_confirmation")]

    # Confirming the address confirms every pending list of the sign-up.
    await conn.execute("UPDATE subscriptions SET status = 'confirmed' WHERE id = $1", sid)
    assert await _memberships(conn, sid) == [("other", "confirmed")]


async def test_unsubscribing_the_address_leaves_every_list(conn: asyncpg.Connection) -> None:
    other = await _other_list(conn)
    sid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO subscriptions (id, email, name, status) VALUES ($1, 'c@example.com', 'C',"
        " 'confirmed')",
        sid,
    )
    await conn.execute(
        "INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
        " VALUES ($1, $2, 'confirmed', 'test')",
        other,
        sid,
    )
    await conn.execute("UPDATE subscriptions SET status = 'unsubscribed' WHERE id = $1", sid)
    assert await _memberships(conn, sid) == [("default", "unsubscribed"), ("other", "unsubscribed")]


async def test_a_subscription_from_before_the_migration_joins_on_its_next_status_change(
    conn: asyncpg.Connection,
) -> None:
    sid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO subscriptions (id, email, name, status) VALUES ($1, 'd@example.com', 'D',"
        " 'pending_confirmation')",
        sid,
    )
    await conn.execute(
        "DELETE FROM list_memberships WHERE subscriber_id = $1", sid
    )  # not backfilled
    await conn.execute("UPDATE subscriptions SET name = 'Dee' WHERE id = $1", sid)
    assert await _memberships(conn, sid) == []  # only a status change writes
    await conn.execute("UPDATE subscriptions SET status = 'confirmed' WHERE id = $1", sid)
    assert await _memberships(conn, sid) == [("default", "confirmed")]


async def test_the_address_key_is_an_hmac_of_the_normalised_address(
    conn: asyncpg.Connection,
) -> None:
    import hashlib
    import hmac

    key = await conn.fetchval("SELECT key FROM instance_keys WHERE purpose = 'suppression'")
    assert len(key) == 32
    assert await conn.fetchval("SELECT herald_address_key(' Ann@Example.COM ')") == hmac.digest(
        key, b"ann@example.com", hashlib.sha256
    )
    other = await conn.fetchval("SELECT herald_address_key('ann.lee@example.com')")
    assert other != hmac.digest(key, b"ann@example.com", hashlib.sha256)


async def test_an_old_style_resubscription_puts_the_default_membership_back_to_pending(
    conn: asyncpg.Connection,
) -> None:
    """Migration 0021: the previous release signs an unsubscribed address up again by
    setting it pending, then confirmed; its default membership follows."""
    sid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO subscriptions (id, email, name, status) VALUES ($1, 'e@example.com', 'E',"
        " 'confirmed')",
        sid,
    )
    await conn.execute("UPDATE subscriptions SET status = 'unsubscribed' WHERE id = $1", sid)
    await conn.execute(
        "UPDATE subscriptions SET status = 'pending_confirmation' WHERE id = $1", sid
    )
    assert await _memberships(conn, sid) == [("default", "pending_confirmation")]
    await conn.execute("UPDATE subscriptions SET status = 'confirmed' WHERE id = $1", sid)
    assert await _memberships(conn, sid) == [("default", "confirmed")]


async def test_a_new_style_resubscription_keeps_only_the_lists_it_chose(
    conn: asyncpg.Connection,
) -> None:
    """This release writes the chosen memberships first, then changes the status: the
    default list the reader left stays left."""
    other = await _other_list(conn)
    sid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO subscriptions (id, email, name, status) VALUES ($1, 'f@example.com', 'F',"
        " 'unsubscribed')",
        sid,
    )
    await conn.execute(
        "INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
        " VALUES ($1, $2, 'pending_confirmation', 'form')",
        other,
        sid,
    )
    await conn.execute(
        "UPDATE subscriptions SET status = 'pending_confirmation' WHERE id = $1", sid
    )
    assert await _memberships(conn, sid) == [
        ("default", "unsubscribed"),
        ("other", "pending_confirmation"),
    ]
