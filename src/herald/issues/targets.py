"""The only door to what an issue goes to: ``issue_lists``, ``newsletter_issues.segment_id``
and the lists and segments an editor can choose from (``targets.sql``). The fan-out's own
statement is ``fan_out_chunk`` (``queries.sql``); this adds the readers of the default list
whom the backfill has not reached yet (:func:`fan_out_unlisted`).

A statement that takes an issue's segment holds the segment slot (``/* segment */ TRUE``),
where the segment's filter goes compiled to SQL over the subscription ``s``, its
parameters after the statement's own (:mod:`herald.segments.compiler`). ``None``: everyone
on the lists.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from herald.core import sql
from herald.core.db import Connection
from herald.issues.domain import ListRef, SegmentRef
from herald.segments.compiler import compile_filter, with_condition
from herald.segments.domain import Filter

T = sql.load("herald.issues", "targets.sql")

Condition = Filter | None


def with_segment(
    statement: str, segment: Condition, first_param: int
) -> tuple[str, Sequence[object]]:
    """The statement with the segment's condition in its slot, its parameters numbered
    from ``first_param``; unchanged (everyone) without a segment."""
    if segment is None:
        return statement, ()
    condition, params = compile_filter(segment, alias="s", first_param=first_param)
    return with_condition(statement, condition), params


async def list_ids(conn: Connection, slugs: Sequence[str]) -> dict[str, uuid.UUID]:
    """The ids of those of ``slugs`` that are lists, by slug."""
    rows = await conn.fetch(T["lists_by_slug"], list(slugs))
    return {row["slug"]: row["id"] for row in rows}


async def segment(conn: Connection, segment_id: uuid.UUID) -> SegmentRef | None:
    row = await conn.fetchrow(T["segment_by_id"], segment_id)
    return SegmentRef(row["id"], row["name"]) if row else None


async def segment_filter(conn: Connection, segment_id: uuid.UUID) -> str | None:
    """A segment's stored filter (JSON text), or None when it is gone."""
    found: str | None = await conn.fetchval(T["segment_filter"], segment_id)
    return found


async def set_target(
    conn: Connection,
    issue_id: uuid.UUID,
    lists: Sequence[uuid.UUID] | None,
    segment_id: uuid.UUID | None,
) -> bool:
    """Replace an editable issue's lists (None: keep them) and segment; False when it is no
    longer editable."""
    chosen = None if lists is None else list(lists)
    return await conn.fetchval(T["set_issue_target"], issue_id, chosen, segment_id) is not None


async def choices(conn: Connection, limit: int) -> tuple[list[ListRef], list[SegmentRef]]:
    """Every list (the default one first) and every segment, for the editor."""
    lists = [ListRef(r["slug"], r["name"]) for r in await conn.fetch(T["all_lists"], limit)]
    segments = [SegmentRef(r["id"], r["name"]) for r in await conn.fetch(T["all_segments"], limit)]
    return lists, segments


async def count_recipients(conn: Connection, issue_id: uuid.UUID, condition: Condition) -> int:
    """How many readers the issue would go to if published now."""
    total = 0
    for query in (T["count_members"], T["count_unlisted"]):
        statement, params = with_segment(query, condition, 2)
        total += int(await conn.fetchval(statement, issue_id, *params))
    return total


async def fan_out_unlisted(
    conn: Connection, issue_id: uuid.UUID, max_attempts: int, condition: Condition
) -> int:
    """Queue the issue for the confirmed readers from before the lists whom the
    default-list backfill has not reached yet (when it goes to the default list); how many."""
    statement, params = with_segment(T["fan_out_unlisted"], condition, 3)
    row = await conn.fetchrow(statement, issue_id, max_attempts, *params)
    return int(row["queued"]) if row else 0
