"""Read-only subscriber look-ups for the admin pages (``subscriber_queries.sql``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald.core import sql
from herald.core.db import Connection

Q = sql.load("herald.admin", "subscriber_queries.sql")


@dataclass(frozen=True, slots=True)
class SubscriberRow:
    id: uuid.UUID
    email: str
    name: str
    status: str
    created_at: datetime
    confirmed_at: datetime | None


def _row(row: Any) -> SubscriberRow:
    return SubscriberRow(
        row["id"], row["email"], row["name"], row["status"], row["created_at"], row["confirmed_at"]
    )


async def search(
    conn: Connection, query: str | None, *, limit: int, offset: int = 0
) -> list[SubscriberRow]:
    """Newest first; ``query`` is an email substring, matched case-insensitively."""
    rows = await conn.fetch(Q["search_subscribers"], query or None, limit, offset)
    return [_row(row) for row in rows]


async def get(conn: Connection, subscriber_id: uuid.UUID) -> SubscriberRow | None:
    row = await conn.fetchrow(Q["get_subscriber"], subscriber_id)
    return _row(row) if row else None
