"""The only door to ``list_welcomes`` and ``list_welcomes_sent`` (migration 0029)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from herald.core import sql
from herald.core.db import Connection
from herald.welcomes.domain import Welcome, WelcomeDraft

Q = sql.load("herald.welcomes")


@dataclass(frozen=True, slots=True)
class Due:
    """A welcome a confirmation earned: the list's email and its reader."""

    welcome: Welcome
    list_name: str
    email: str
    name: str
    attributes: str  # the reader's attributes, JSON text


def _welcome(row: Any) -> Welcome:
    return Welcome(
        list_id=row["list_id"],
        enabled=row["enabled"],
        subject=row["subject"],
        body=row["body"],
        updated_at=row["updated_at"],
    )


async def get(conn: Connection, list_id: uuid.UUID) -> Welcome | None:
    row = await conn.fetchrow(Q["get_welcome"], list_id)
    return _welcome(row) if row is not None else None


async def save(
    conn: Connection, list_id: uuid.UUID, draft: WelcomeDraft, user_id: uuid.UUID | None
) -> Welcome | None:
    """The saved welcome; None when there is no such list."""
    row = await conn.fetchrow(
        Q["save_welcome"], list_id, draft.enabled, draft.subject, draft.body, user_id
    )
    return _welcome(row) if row is not None else None


async def take_due(conn: Connection, subscriber_id: uuid.UUID) -> list[Due]:
    rows = await conn.fetch(Q["take_due"], subscriber_id)
    return [
        Due(
            welcome=_welcome(row),
            list_name=row["list_name"],
            email=row["email"],
            name=row["name"],
            attributes=row["attributes"],
        )
        for row in rows
    ]


async def confirmed_readers(conn: Connection, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    """Those of ``ids`` who are confirmed subscribers now."""
    if not ids:
        return set()
    return {row["id"] for row in await conn.fetch(Q["confirmed_readers"], ids)}
