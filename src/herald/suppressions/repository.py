"""The only door to ``suppressions`` (and, for the invariant, to the subscription a new
suppression unsubscribes)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from herald.core import sql
from herald.core.db import Connection
from herald.suppressions.domain import Cursor, Filter, Reason, Suppression

Q = sql.load("herald.suppressions")


def _row(row: Any) -> Suppression:
    return Suppression(
        bytes(row["address_key"]),
        row["email"],
        Reason(row["reason"]),
        row["source"],
        row["created_at"],
    )


@dataclass(frozen=True, slots=True)
class Added:
    suppression: Suppression
    created: bool
    unsubscribed: uuid.UUID | None  # the subscription this unsubscribed, if any


@dataclass(frozen=True, slots=True)
class Removal:
    before: Suppression | None  # None: the address was not suppressed
    removed: bool


async def add(conn: Connection, email: str, reason: Reason, source: str) -> Added:
    row = await conn.fetchrow(Q["add"], email, reason.value, source)
    assert row is not None  # the statement always finds or makes the row
    return Added(_row(row), bool(row["created"]), row["unsubscribed"])


@dataclass(frozen=True, slots=True)
class AddedMany:
    email: str
    created: bool
    unsubscribed: uuid.UUID | None  # the subscription this unsubscribed, if any


async def add_many(conn: Connection, rows: Sequence[tuple[str, Reason, str]]) -> list[AddedMany]:
    """:func:`add` for several (normalised address, reason, source), distinct by
    address, in one statement."""
    if not rows:
        return []
    found = await conn.fetch(
        Q["add_many"],
        [email for email, _, _ in rows],
        [reason.value for _, reason, _ in rows],
        [source for _, _, source in rows],
    )
    return [AddedMany(r["email"], bool(r["created"]), r["unsubscribed"]) for r in found]


async def remove(conn: Connection, email: str) -> Removal:
    row = await conn.fetchrow(Q["remove"], email)
    assert row is not None  # one row, NULLs when there was nothing
    if row["address_key"] is None:
        return Removal(None, removed=False)
    return Removal(_row(row), bool(row["removed"]))


async def page(conn: Connection, where: Filter, after: Cursor, limit: int) -> list[Suppression]:
    """A page of ``where`` without a text."""
    return await _fetch(conn, Q["page"], where, after, limit)


async def by_address(
    conn: Connection, where: Filter, after: Cursor, limit: int
) -> list[Suppression]:
    """The row of the whole (normalised) address ``where.query``, by its key."""
    return await _fetch(conn, Q["by_address"], where, after, limit)


async def containing(
    conn: Connection, where: Filter, after: Cursor, limit: int, *, walk: int
) -> list[Suppression]:
    """The rows whose kept address contains ``where.query``: the newest ``walk`` rows
    first, then, if they hold fewer than ``limit`` and are not the whole rest of the
    list, the trigram index."""
    found = await conn.fetch(Q["contains_recent"], *_params(where, after, limit), walk)
    rows = [_row(row) for row in found if row["address_key"] is not None]
    if len(rows) < limit and not found[0]["walked_all"]:
        rows = await _fetch(conn, Q["contains"], where, after, limit)
    return rows


def _params(where: Filter, after: Cursor, limit: int) -> tuple[Any, ...]:
    reason = where.reason.value if where.reason else None
    return after.created_at, after.key, reason, where.query or None, limit


async def _fetch(
    conn: Connection, query: str, where: Filter, after: Cursor, limit: int
) -> list[Suppression]:
    return [_row(row) for row in await conn.fetch(query, *_params(where, after, limit))]


async def counts(conn: Connection) -> dict[Reason, int]:
    found = {Reason(row["reason"]): int(row["n"]) for row in await conn.fetch(Q["counts"])}
    return {reason: found.get(reason, 0) for reason in Reason}
