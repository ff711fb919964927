"""The only door to what the preference centre reads and writes: the reader's row, their
memberships and the lists they may see, their suppression, their delivery history."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald.core import sql
from herald.core.db import Connection

Q = sql.load("herald.preferences")


@dataclass(frozen=True, slots=True)
class Reader:
    id: uuid.UUID
    email: str
    name: str
    status: str
    attributes: dict[str, Any]
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


@dataclass(frozen=True, slots=True)
class ListChoice:
    """A list on the page, with the reader's membership (``status`` None: not a member)."""

    id: uuid.UUID
    slug: str
    name: str
    description: str
    public: bool
    status: str | None
    source: str | None
    consent_ip: str | None
    consent_user_agent: str | None
    joined_at: datetime | None
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


@dataclass(frozen=True, slots=True)
class Saved:
    joined: int
    left: int
    confirmed: bool  # the address itself was confirmed again


def _reader(row: Any) -> Reader:
    attributes = json.loads(row["attributes"]) if row["attributes"] else {}
    return Reader(
        row["id"],
        row["email"],
        row["name"],
        row["status"],
        attributes if isinstance(attributes, dict) else {},
        row["created_at"],
        row["confirmed_at"],
        row["unsubscribed_at"],
    )


async def reader(
    conn: Connection, subscriber_id: uuid.UUID, *, lock: bool = False
) -> Reader | None:
    if lock:
        row = await conn.fetchrow(Q["lock_subscriber"], subscriber_id)
    else:
        row = await conn.fetchrow(Q["subscriber"], subscriber_id)
    return _reader(row) if row is not None else None


async def lists(conn: Connection, subscriber_id: uuid.UUID) -> list[ListChoice]:
    rows = await conn.fetch(Q["lists"], subscriber_id)
    return [
        ListChoice(
            row["id"],
            row["slug"],
            row["name"],
            row["description"],
            row["visibility"] == "public",
            row["status"],
            row["source"],
            row["consent_ip"],
            row["consent_user_agent"],
            row["joined_at"],
            row["confirmed_at"],
            row["unsubscribed_at"],
        )
        for row in rows
    ]


async def suppression(conn: Connection, email: str) -> tuple[str, datetime] | None:
    row = await conn.fetchrow(Q["suppression"], email)
    return (row["reason"], row["created_at"]) if row is not None else None


async def save(
    conn: Connection,
    subscriber_id: uuid.UUID,
    join: Sequence[uuid.UUID],
    leave: Sequence[uuid.UUID],
    *,
    ip: str | None,
    user_agent: str | None,
    confirm_address: bool,
) -> Saved:
    row = await conn.fetchrow(
        Q["save"], subscriber_id, list(join), list(leave), ip, user_agent, confirm_address
    )
    assert row is not None  # one row always
    return Saved(int(row["joined"]), int(row["left_lists"]), bool(row["confirmed"]))


async def delivery_counts(conn: Connection, subscriber_id: uuid.UUID) -> list[tuple[str, str, int]]:
    rows = await conn.fetch(Q["delivery_counts"], subscriber_id)
    return [(row["kind"], row["status"], int(row["n"])) for row in rows]


async def recent_deliveries(
    conn: Connection, subscriber_id: uuid.UUID, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(Q["recent_deliveries"], subscriber_id, limit)
    return [dict(row) for row in rows]
