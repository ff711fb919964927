"""The only door to ``lists``, ``list_memberships`` (for the lists' own pages and API) and
``list_member_counts`` (migrations 0018 and 0019)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from herald.core import sql
from herald.core.db import Connection
from herald.core.errors import Conflict, NotFound
from herald.lists.domain import (
    ListDraft,
    Member,
    MemberCounts,
    MemberStatus,
    NewsList,
    OptIn,
    Visibility,
)

Q = sql.load("herald.lists")
NIL = uuid.UUID(int=0)
EPOCH = datetime.fromisoformat("0001-01-01T00:00:00+00:00")


def slug_conflict(slug: str) -> Conflict:
    return Conflict(f"a list with the slug '{slug}' already exists: choose another slug")


def _list(row: asyncpg.Record) -> NewsList:
    return NewsList(
        id=row["id"],
        slug=row["slug"],
        name=row["name"],
        description=row["description"],
        visibility=Visibility(row["visibility"]),
        opt_in=OptIn(row["opt_in"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        counts=MemberCounts(row["pending"], row["confirmed"], row["unsubscribed"]),
    )


def _member(row: asyncpg.Record) -> Member:
    return Member(
        subscriber_id=row["subscriber_id"],
        email=row["email"],
        name=row["name"],
        status=MemberStatus(row["status"]),
        subscriber_status=row["subscriber_status"],
        source=row["source"],
        consent_ip=row["consent_ip"],
        consent_user_agent=row["consent_user_agent"],
        created_at=row["created_at"],
        confirmed_at=row["confirmed_at"],
        unsubscribed_at=row["unsubscribed_at"],
    )


async def all_lists(conn: Connection, limit: int) -> list[NewsList]:
    return [_list(row) for row in await conn.fetch(Q["all_lists"], limit)]


async def list_page(
    conn: Connection, after: tuple[datetime, uuid.UUID] | None, limit: int
) -> list[NewsList]:
    at, ident = after or (EPOCH, NIL)
    return [_list(row) for row in await conn.fetch(Q["list_page"], at, ident, limit)]


async def by_id(conn: Connection, list_id: uuid.UUID) -> NewsList | None:
    row = await conn.fetchrow(Q["list_by_id"], list_id)
    return _list(row) if row else None


async def public_by_slug(conn: Connection, slug: str) -> NewsList | None:
    row = await conn.fetchrow(Q["public_list"], slug)
    return _list(row) if row else None


async def lock(conn: Connection, list_id: uuid.UUID) -> NewsList | None:
    row = await conn.fetchrow(Q["lock_list"], list_id)
    return _list(row) if row else None


async def insert(conn: Connection, draft: ListDraft) -> uuid.UUID:
    """The new list's id; ``Conflict`` when its slug is taken (also by a concurrent insert:
    the second waits for the first to commit and then finds the slug taken)."""
    list_id: uuid.UUID | None = await conn.fetchval(
        Q["insert_list"],
        draft.slug,
        draft.name,
        draft.description,
        draft.visibility.value,
        draft.opt_in.value,
    )
    if list_id is None:
        raise slug_conflict(draft.slug)
    return list_id


async def update(conn: Connection, list_id: uuid.UUID, draft: ListDraft) -> bool:
    try:
        async with conn.transaction():  # a savepoint: the caller's transaction survives
            changed = await conn.fetchval(
                Q["update_list"],
                list_id,
                draft.slug,
                draft.name,
                draft.description,
                draft.visibility.value,
                draft.opt_in.value,
            )
    except asyncpg.UniqueViolationError:
        raise slug_conflict(draft.slug) from None
    return changed is not None


async def issues_targeting(conn: Connection, list_id: uuid.UUID, limit: int = 3) -> list[str]:
    return [row["title"] for row in await conn.fetch(Q["issues_targeting"], list_id, limit)]


async def delete(conn: Connection, list_id: uuid.UUID) -> bool:
    try:
        async with conn.transaction():
            return await conn.fetchval(Q["delete_list"], list_id) is not None
    except (asyncpg.RestrictViolationError, asyncpg.ForeignKeyViolationError):
        # An issue came to target the list after the check (issue_lists is RESTRICT).
        raise Conflict("an issue targets this list: it cannot be deleted") from None


async def members(
    conn: Connection,
    list_id: uuid.UUID,
    *,
    status: MemberStatus | None,
    after: uuid.UUID | None,
    limit: int,
) -> list[Member]:
    start = after or NIL
    if status is None:
        rows = await conn.fetch(Q["members"], list_id, start, limit)
    else:
        rows = await conn.fetch(Q["members_by_status"], list_id, status.value, start, limit)
    return [_member(row) for row in rows]


async def member(conn: Connection, list_id: uuid.UUID, subscriber_id: uuid.UUID) -> Member | None:
    row = await conn.fetchrow(Q["member"], list_id, subscriber_id)
    return _member(row) if row else None


@dataclass(frozen=True, slots=True)
class AddressState:
    status: str
    suppressed: bool


async def lock_subscriber(conn: Connection, subscriber_id: uuid.UUID) -> AddressState | None:
    row = await conn.fetchrow(Q["lock_subscriber"], subscriber_id)
    return AddressState(row["status"], row["suppressed"]) if row else None


async def membership_status(
    conn: Connection, list_id: uuid.UUID, subscriber_id: uuid.UUID
) -> MemberStatus | None:
    raw = await conn.fetchval(Q["membership_status"], list_id, subscriber_id)
    return MemberStatus(raw) if raw is not None else None


async def add_member(
    conn: Connection,
    list_id: uuid.UUID,
    subscriber_id: uuid.UUID,
    status: MemberStatus,
    source: str,
) -> None:
    try:
        await conn.execute(Q["add_member"], list_id, subscriber_id, status.value, source)
    except asyncpg.ForeignKeyViolationError:
        # The list was deleted since the caller looked (the subscriber is locked).
        raise NotFound("no such list") from None


async def remove_member(conn: Connection, list_id: uuid.UUID, subscriber_id: uuid.UUID) -> None:
    await conn.execute(Q["remove_member"], list_id, subscriber_id)
