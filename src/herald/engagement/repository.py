"""The only door to engagement tracking's tables (migration 0031)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from herald.core import sql
from herald.core.db import Connection

Q = sql.load("herald.engagement")


async def set_tracking(conn: Connection, issue_id: uuid.UUID, on: bool) -> None:
    """Tracking on or off for a draft or scheduled issue (a published one keeps its own)."""
    if on:
        await conn.execute(Q["track_issue"], issue_id)
    else:
        await conn.execute(Q["untrack_issue"], issue_id)


async def tracking_of(conn: Connection, issue_id: uuid.UUID) -> tuple[bool, list[str] | None]:
    """Whether the issue is tracked, and its links once published."""
    row = await conn.fetchrow(Q["tracking_of"], issue_id)
    if row is None:
        return False, None
    links = row["links"]
    return True, list(links) if links is not None else None


async def freeze_links(conn: Connection, issue_id: uuid.UUID, links: Sequence[str]) -> bool:
    return await conn.fetchval(Q["freeze_links"], issue_id, list(links)) is not None


async def links_for_rendering(
    conn: Connection, issue_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, ...]]:
    rows = await conn.fetch(Q["links_for_rendering"], list(issue_ids))
    return {row["issue_id"]: tuple(row["links"]) for row in rows}


async def opted_out(conn: Connection, subscriber_ids: Sequence[uuid.UUID]) -> set[uuid.UUID]:
    rows = await conn.fetch(Q["opted_out"], list(subscriber_ids))
    return {row["subscriber_id"] for row in rows}


async def set_opt_out(conn: Connection, subscriber_id: uuid.UUID, out: bool) -> None:
    if out:
        await conn.execute(Q["opt_out"], subscriber_id)
    else:
        await conn.execute(Q["opt_in"], subscriber_id)


async def record_open(
    conn: Connection, issue_id: uuid.UUID, delivery_id: int, machine: bool, seconds: float
) -> None:
    await conn.execute(Q["record_open"], issue_id, delivery_id, machine, seconds)


async def record_click(
    conn: Connection,
    issue_id: uuid.UUID,
    delivery_id: int,
    link: int,
    machine: bool,
    seconds: float,
) -> str | None:
    """The link's stored target (None: the issue has no such link), the click recorded."""
    url: str | None = await conn.fetchval(
        Q["record_click"], issue_id, delivery_id, link, machine, seconds
    )
    return url


@dataclass(frozen=True, slots=True)
class Counts:
    opens: dict[bool, int]  # machine? -> unique opens
    clicks: dict[tuple[int, bool], tuple[int, int]]  # (link, machine?) -> (unique, total)
    clickers: int


async def counts(conn: Connection, issue_id: uuid.UUID) -> Counts:
    rows: list[Any] = await conn.fetch(Q["issue_results"], issue_id)
    opens: dict[bool, int] = {}
    clicks: dict[tuple[int, bool], tuple[int, int]] = {}
    clickers = 0
    for row in rows:
        if row["kind"] == "open":
            opens[row["machine"]] = row["uniques"]
        elif row["kind"] == "click":
            clicks[(row["link"], row["machine"])] = (row["uniques"], row["total"])
        else:
            clickers = row["uniques"]
    return Counts(opens, clicks, clickers)


async def reader_engagement(
    conn: Connection, subscriber_id: uuid.UUID, limit: int
) -> list[dict[str, Any]]:
    """Per tracked issue the reader was sent (newest first): title, sent_at, opened, clicks."""
    rows = await conn.fetch(Q["reader_engagement"], subscriber_id, limit)
    return [dict(row) for row in rows]
