"""The only door to ``segments``, and to subscribers as segments see them (with their
attributes, selected by a compiled filter)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from herald.core import sql
from herald.core.db import Connection
from herald.core.errors import Conflict, NotFound
from herald.segments.compiler import compile_filter, with_condition
from herald.segments.domain import Filter, parse_filter
from herald.segments.saved import SegmentDraft

Q = sql.load("herald.segments")
ALIAS = "s"


@dataclass(frozen=True, slots=True)
class Segment:
    id: uuid.UUID
    name: str
    filter: Filter
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Member:
    """A subscriber with their attributes."""

    id: uuid.UUID
    email: str
    name: str
    status: str
    created_at: datetime
    confirmed_at: datetime | None
    attributes: dict[str, Any]


def _segment(row: Any) -> Segment:
    return Segment(
        row["id"],
        row["name"],
        parse_filter(json.loads(row["filter"])),
        row["created_at"],
        row["updated_at"],
    )


def _member(row: Any) -> Member:
    return Member(
        row["id"],
        row["email"],
        row["name"],
        row["status"],
        row["created_at"],
        row["confirmed_at"],
        json.loads(row["attributes"]),
    )


def _name_taken(name: str) -> Conflict:
    return Conflict(f"a segment named {name!r} already exists: choose another name")


async def list_segments(
    conn: Connection, after: tuple[datetime, uuid.UUID], limit: int
) -> list[Segment]:
    return [_segment(row) for row in await conn.fetch(Q["list_segments"], *after, limit)]


async def get(conn: Connection, segment_id: uuid.UUID) -> Segment | None:
    row = await conn.fetchrow(Q["get_segment"], segment_id)
    return _segment(row) if row is not None else None


async def insert(conn: Connection, draft: SegmentDraft, by: uuid.UUID | None) -> Segment:
    try:
        async with conn.transaction():  # a savepoint: the caller's transaction survives
            row = await conn.fetchrow(Q["insert_segment"], draft.name, draft.json(), by)
    except asyncpg.UniqueViolationError:
        raise _name_taken(draft.name) from None
    return _segment(row)


async def update(conn: Connection, segment_id: uuid.UUID, draft: SegmentDraft) -> Segment | None:
    try:
        async with conn.transaction():
            row = await conn.fetchrow(Q["update_segment"], segment_id, draft.name, draft.json())
    except asyncpg.UniqueViolationError:
        raise _name_taken(draft.name) from None
    return _segment(row) if row is not None else None


async def issues_using(conn: Connection, segment_id: uuid.UUID) -> tuple[int, int]:
    """(unsent, all) issues that target the segment."""
    row = await conn.fetchrow(Q["issues_using"], segment_id)
    assert row is not None
    return int(row["unsent"]), int(row["total"])


async def delete(conn: Connection, segment_id: uuid.UUID) -> bool:
    try:
        async with conn.transaction():
            status = await conn.execute(Q["delete_segment"], segment_id)
    except asyncpg.ForeignKeyViolationError:
        # An issue came to target it after the caller's check (segment_id is RESTRICT).
        raise Conflict("an issue targets this segment: it cannot be deleted") from None
    return status.split()[-1] != "0"


async def list_choices(conn: Connection) -> list[tuple[str, str]]:
    """(slug, name) of every list, by name."""
    return [(row["slug"], row["name"]) for row in await conn.fetch(Q["list_choices"])]


async def known_lists(conn: Connection, slugs: list[str]) -> set[str]:
    return {row["slug"] for row in await conn.fetch(Q["known_lists"], slugs)}


async def count(conn: Connection, where: Filter, timeout: str) -> int | None:
    """Subscribers matching ``where``; None when counting took longer than ``timeout``
    (a Postgres interval such as ``5s``). Call inside a transaction."""
    condition, params = compile_filter(where, alias=ALIAS, first_param=1)
    try:
        async with conn.transaction():  # the timeout and a cancelled count end with it
            await conn.execute(Q["local_statement_timeout"], timeout)
            found: int = await conn.fetchval(with_condition(Q["count_members"], condition), *params)
    except asyncpg.QueryCanceledError:
        return None
    return found


async def members(
    conn: Connection,
    where: Filter,
    after: tuple[datetime, uuid.UUID],
    limit: int,
    timeout: str,
) -> list[Member] | None:
    """Up to ``limit`` subscribers matching ``where``, newest first after ``after``;
    None when the page took longer than ``timeout``."""
    condition, params = compile_filter(where, alias=ALIAS, first_param=4)
    statement = with_condition(Q["members_newest"], condition)
    try:
        async with conn.transaction():
            await conn.execute(Q["local_statement_timeout"], timeout)
            rows = await conn.fetch(statement, *after, limit, *params)
    except asyncpg.QueryCanceledError:
        return None
    return [_member(row) for row in rows]


async def get_member(conn: Connection, subscriber_id: uuid.UUID) -> Member | None:
    row = await conn.fetchrow(Q["get_member"], subscriber_id)
    return _member(row) if row is not None else None


async def lock_attributes(conn: Connection, subscriber_id: uuid.UUID) -> dict[str, Any]:
    raw = await conn.fetchval(Q["lock_attributes"], subscriber_id)
    if raw is None:
        raise NotFound("no such subscriber")
    attributes: dict[str, Any] = json.loads(raw)
    return attributes


async def set_attributes(
    conn: Connection, subscriber_id: uuid.UUID, attributes: dict[str, Any]
) -> Member:
    text = json.dumps(attributes, separators=(",", ":"), ensure_ascii=False)
    row = await conn.fetchrow(Q["set_attributes"], subscriber_id, text)
    if row is None:
        raise NotFound("no such subscriber")
    return _member(row)
