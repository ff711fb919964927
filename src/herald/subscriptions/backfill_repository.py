"""The SQL of the default-list backfill (``backfill.sql``)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from herald.core import sql
from herald.core.db import Connection
from herald.core.errors import Unavailable

Q = sql.load("herald.subscriptions", "backfill.sql")


@dataclass(frozen=True, slots=True)
class Batch:
    seen: int  # subscriptions walked
    added: int  # of which joined the default list
    last: uuid.UUID | None  # the last one's id: where the next batch starts


async def needed(conn: Connection, kind: str) -> tuple[bool, int]:
    """(whether to enqueue the job, an estimate of the subscriptions to walk). Takes a
    transaction-scoped lock so that workers starting together check one at a time; when
    nothing is missing, remembers that the backfill is finished."""
    await conn.execute(Q["backfill_lock"])
    state = await conn.fetchrow(Q["backfill_state"], kind)
    assert state is not None
    estimate = int(state["estimate"])
    if state["finished"] or state["open"]:
        return False, estimate
    if not await conn.fetchval(Q["backfill_missing"]):
        await finished(conn)
        return False, estimate
    return True, estimate


async def finished(conn: Connection) -> None:
    await conn.execute(Q["backfill_finished"])


async def batch(conn: Connection, after: uuid.UUID, size: int) -> Batch:
    try:
        row = await conn.fetchrow(Q["backfill_batch"], after, size)
    except asyncpg.TransactionRollbackError as exc:
        # A deadlock with a concurrent bulk update (say, the previous release's
        # unsubscribe of a selection): the step is worth retrying, not failing the job.
        raise Unavailable(f"backfill step rolled back: {exc}", retry_after=1) from exc
    assert row is not None
    return Batch(int(row["seen"]), int(row["added"]), row["last"])
