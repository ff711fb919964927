"""The only door to what the public archive reads: public lists and their public sent issues."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from herald.archive.domain import ArchiveList, Entry
from herald.core import sql
from herald.core.db import Connection
from herald.lists.domain import DEFAULT_SLUG

Q = sql.load("herald.archive")


@dataclass(frozen=True, slots=True)
class Bodies:
    html: str
    text: str


def _entry(row: Any) -> Entry:
    return Entry(
        id=row["id"],
        slug=row["archive_slug"],
        title=row["title"],
        preheader=row["preheader"],
        published_at=row["published_at"],
        updated_at=row["updated_at"],
    )


async def public_list(conn: Connection, slug: str) -> ArchiveList | None:
    row = await conn.fetchrow(Q["archive_list"], slug)
    if row is None:
        return None
    return ArchiveList(row["id"], row["slug"], row["name"], row["description"], row["updated_at"])


async def entries(
    conn: Connection,
    news_list: ArchiveList,
    limit: int,
    after: Entry | None = None,
) -> list[Entry]:
    rows = await conn.fetch(
        Q["archive_entries"],
        news_list.id,
        news_list.slug == DEFAULT_SLUG,
        after.published_at if after else None,
        after.id if after else None,
        limit,
    )
    return [_entry(row) for row in rows]


async def position(conn: Connection, news_list: ArchiveList, slug: str) -> Entry | None:
    row = await conn.fetchrow(
        Q["archive_position"], news_list.id, news_list.slug == DEFAULT_SLUG, slug
    )
    return _entry(row) if row else None


async def bodies(conn: Connection, issue_ids: list[uuid.UUID]) -> dict[uuid.UUID, Bodies]:
    rows = await conn.fetch(Q["archive_bodies"], issue_ids)
    return {row["id"]: Bodies(row["html_content"], row["text_content"]) for row in rows}
