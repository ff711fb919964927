"""The only door to ``imports``, ``job_files`` and ``job_errors``, and the import's and
export's statements on subscriptions and memberships."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from herald.core import sql
from herald.core.db import Connection
from herald.imports.domain import Counts, Mode, Row
from herald.segments.attributes import MAX_BYTES
from herald.segments.compiler import compile_filter, with_condition
from herald.segments.domain import Filter

Q = sql.load("herald.imports")

DEADLOCK_RETRIES = 5


@dataclass(frozen=True, slots=True)
class ImportRecord:
    job_id: uuid.UUID
    filename: str
    size: int
    chunks: int
    uploaded_at: datetime | None
    delimiter: str
    header: list[str] | None
    columns: list[str] | None
    list_ids: list[uuid.UUID]
    mode: Mode
    hold_token: uuid.UUID | None
    counts: Counts
    created_by: uuid.UUID | None
    created_at: datetime


def _record(row: Any) -> ImportRecord:
    columns = row["columns"]
    return ImportRecord(
        job_id=row["job_id"],
        filename=row["filename"],
        size=row["size"],
        chunks=row["chunks"],
        uploaded_at=row["uploaded_at"],
        delimiter=row["delimiter"],
        header=list(row["header"]) if row["header"] is not None else None,
        columns=json.loads(columns) if isinstance(columns, str) else columns,
        list_ids=list(row["list_ids"]),
        mode=Mode(row["mode"]),
        hold_token=row["hold_token"],
        counts=Counts(row["imported"], row["updated"], row["skipped"], row["rejected"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


async def insert_import(
    conn: Connection,
    job_id: uuid.UUID,
    filename: str,
    created_by: uuid.UUID | None,
    hold_token: uuid.UUID,
) -> None:
    await conn.execute(Q["insert_import"], job_id, filename, created_by, hold_token)


async def add_chunk(conn: Connection, job_id: uuid.UUID, seq: int, data: bytes) -> bool:
    status: str = await conn.execute(Q["add_chunk"], job_id, seq, data)
    return status.endswith(" 1")


async def read_piece(
    conn: Connection, job_id: uuid.UUID, seq: int, start: int, length: int
) -> bytes | None:
    data: bytes | None = await conn.fetchval(Q["read_piece"], job_id, seq, start, length)
    return data


async def finish_upload(
    conn: Connection, job_id: uuid.UUID, header: list[str], delimiter: str
) -> bool:
    return await conn.fetchval(Q["finish_upload"], job_id, header, delimiter) is not None


async def get_import(conn: Connection, job_id: uuid.UUID) -> ImportRecord | None:
    row = await conn.fetchrow(Q["get_import"], job_id)
    return _record(row) if row is not None else None


async def recent_imports(conn: Connection, limit: int) -> list[ImportRecord]:
    """The newest ``limit`` imports, newest first."""
    return [_record(row) for row in await conn.fetch(Q["recent_imports"], limit)]


async def configure(
    conn: Connection,
    job_id: uuid.UUID,
    columns: list[str],
    list_ids: Sequence[uuid.UUID],
    mode: Mode,
    hold_token: uuid.UUID,
) -> bool:
    found = await conn.fetchval(
        Q["configure"], job_id, json.dumps(columns), list(list_ids), mode.value, hold_token
    )
    return found is not None


async def add_counts(conn: Connection, job_id: uuid.UUID, counts: Counts) -> Counts:
    """Add a step's counts; the import's totals."""
    row = await conn.fetchrow(
        Q["add_counts"], job_id, counts.imported, counts.updated, counts.skipped, counts.rejected
    )
    assert row is not None  # the step read the import in this transaction
    return Counts(row["imported"], row["updated"], row["skipped"], row["rejected"])


@dataclass(frozen=True, slots=True)
class ListRef:
    id: uuid.UUID
    slug: str
    name: str = ""


async def lists_by_slug(conn: Connection, slugs: Sequence[str]) -> list[ListRef]:
    rows = await conn.fetch(Q["lists_by_slug"], list(slugs))
    return [ListRef(row["id"], row["slug"]) for row in rows]


async def list_refs(conn: Connection, ids: Sequence[uuid.UUID]) -> list[ListRef]:
    rows = await conn.fetch(Q["list_slugs"], list(ids))
    return [ListRef(row["id"], row["slug"], row["name"]) for row in rows]


async def all_lists(conn: Connection) -> list[ListRef]:
    return [
        ListRef(row["id"], row["slug"], row["name"]) for row in await conn.fetch(Q["all_lists"])
    ]


@dataclass(frozen=True, slots=True)
class Written:
    id: uuid.UUID
    email: str
    name: str
    inserted: bool
    to_confirm: bool


@dataclass(frozen=True, slots=True)
class Batch:
    """What one batch's statement did: the addresses written, and the existing ones left
    alone because their attributes merged with the row's would pass the size limit."""

    written: list[Written]
    too_large: list[str]


async def upsert_batch(
    conn: Connection,
    rows: Sequence[Row],
    list_ids: Sequence[uuid.UUID],
    *,
    confirmed: bool,
    source: str,
) -> Batch:
    """One statement for the batch (see queries.sql), in a savepoint retried on a deadlock
    with a concurrent writer of the same addresses (the caller's transaction goes on)."""
    args = (
        [r.email for r in rows],
        [r.name for r in rows],
        [r.attributes for r in rows],
        list(list_ids),
        confirmed,
        source,
        MAX_BYTES,
    )
    for attempt in range(DEADLOCK_RETRIES):
        try:
            async with conn.transaction():
                found = await conn.fetch(Q["upsert_batch"], *args)
            break
        except asyncpg.DeadlockDetectedError:
            if attempt == DEADLOCK_RETRIES - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    return Batch(
        [
            Written(r["id"], r["email"], r["name"], r["inserted"], r["to_confirm"])
            for r in found
            if not r["too_large"]
        ],
        [r["email"] for r in found if r["too_large"]],
    )


async def enqueue_confirmations(
    conn: Connection,
    token_hashes: Sequence[bytes],
    subscriber_ids: Sequence[uuid.UUID],
    recipients: Sequence[str],
    messages: Sequence[str],
    *,
    ttl_seconds: float,
    max_attempts: int,
) -> None:
    await conn.execute(
        Q["enqueue_confirmations"],
        list(token_hashes),
        list(subscriber_ids),
        list(recipients),
        list(messages),
        ttl_seconds,
        max_attempts,
    )


async def insert_errors(
    conn: Connection, job_id: uuid.UUID, errors: Sequence[tuple[int, str | None, str]]
) -> None:
    if not errors:
        return
    lines, emails, reasons = zip(*errors, strict=True)
    await conn.execute(Q["insert_errors"], job_id, list(lines), list(emails), list(reasons))


@dataclass(frozen=True, slots=True)
class ErrorRow:
    line: int
    email: str | None
    error: str


async def errors_page(
    conn: Connection, job_id: uuid.UUID, after_line: int, limit: int
) -> list[ErrorRow]:
    rows = await conn.fetch(Q["errors_page"], job_id, after_line, limit)
    return [ErrorRow(row["line"], row["email"], row["error"]) for row in rows]


@dataclass(frozen=True, slots=True)
class ExportRow:
    id: uuid.UUID
    email: str
    name: str
    status: str
    created_at: datetime
    confirmed_at: datetime | None
    attributes: str


@dataclass(frozen=True, slots=True)
class ExportFilter:
    """Each None for none: a status, a text the email or name contains, a LIKE pattern, a
    segment's filter."""

    status: str | None = None
    contains: str | None = None
    prefix_pattern: str | None = None
    segment: Filter | None = None


async def export_page(
    conn: Connection,
    after: tuple[datetime, uuid.UUID],
    limit: int,
    list_id: uuid.UUID | None,
    where: ExportFilter,
) -> list[ExportRow]:
    args: list[object] = [
        after[0],
        after[1],
        limit,
        where.status,
        where.contains,
        where.prefix_pattern,
    ]
    if list_id is None:
        statement = Q["export_all"]
    else:
        statement = Q["export_list"]
        args.append(list_id)
    if where.segment is not None:
        condition, params = compile_filter(where.segment, alias="s", first_param=len(args) + 1)
        statement = with_condition(statement, condition)
        args += params
    rows = await conn.fetch(statement, *args)
    return [
        ExportRow(
            r["id"],
            r["email"],
            r["name"],
            r["status"],
            r["created_at"],
            r["confirmed_at"],
            r["attributes"],
        )
        for r in rows
    ]
