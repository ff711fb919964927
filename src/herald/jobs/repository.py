"""The only door to the ``jobs`` table."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg

from herald.core import sql
from herald.core.db import Connection
from herald.jobs.domain import Job, JobStatus

Q = sql.load("herald.jobs")


def _job(row: asyncpg.Record | None) -> Job | None:
    if row is None:
        return None
    params = row["params"]
    return Job(
        id=row["id"],
        kind=row["kind"],
        params=json.loads(params) if isinstance(params, str) else dict(params),
        description=row["description"],
        status=JobStatus(row["status"]),
        position=row["position"],
        done=row["done"],
        skipped=row["skipped"],
        total=row["total"],
        message=row["message"],
        attempts=row["attempts"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        finished_at=row["finished_at"],
    )


async def insert(
    conn: Connection,
    *,
    kind: str,
    params: dict[str, Any],
    description: str,
    total: int | None,
    created_by: uuid.UUID | None,
) -> Job:
    row = await conn.fetchrow(Q["insert"], kind, json.dumps(params), description, total, created_by)
    job = _job(row)
    assert job is not None
    return job


async def get(conn: Connection, job_id: uuid.UUID) -> Job | None:
    return _job(await conn.fetchrow(Q["get"], job_id))


async def get_many(conn: Connection, job_ids: list[uuid.UUID]) -> dict[uuid.UUID, Job]:
    """The jobs of ``job_ids`` that exist, by id."""
    rows = await conn.fetch(Q["get_many"], job_ids)
    return {job.id: job for job in map(_job, rows) if job is not None}


async def recent(conn: Connection, kind: str, limit: int) -> list[Job]:
    rows = await conn.fetch(Q["recent"], kind, limit)
    return [job for job in map(_job, rows) if job is not None]


async def claim_next(conn: Connection, token: uuid.UUID, lease_seconds: float) -> Job | None:
    return _job(await conn.fetchrow(Q["claim_next"], token, lease_seconds))


async def claim_one(
    conn: Connection, job_id: uuid.UUID, token: uuid.UUID, lease_seconds: float
) -> Job | None:
    return _job(await conn.fetchrow(Q["claim_one"], job_id, token, lease_seconds))


async def advance(
    conn: Connection,
    job_id: uuid.UUID,
    token: uuid.UUID,
    *,
    position: str | None,
    done: int,
    skipped: int,
    lease_seconds: float,
) -> Job | None:
    row = await conn.fetchrow(Q["advance"], job_id, token, position, done, skipped, lease_seconds)
    return _job(row)


async def finish(
    conn: Connection, job_id: uuid.UUID, token: uuid.UUID, status: JobStatus, message: str
) -> Job | None:
    return _job(await conn.fetchrow(Q["finish"], job_id, token, status.value, message))


async def release(conn: Connection, job_id: uuid.UUID, token: uuid.UUID) -> Job | None:
    return _job(await conn.fetchrow(Q["release"], job_id, token))


async def cancel(conn: Connection, job_id: uuid.UUID, message: str) -> Job | None:
    return _job(await conn.fetchrow(Q["cancel"], job_id, message))


async def delete_finished(conn: Connection, older_than_seconds: float) -> int:
    status: str = await conn.execute(Q["delete_finished"], older_than_seconds)
    return int(status.rsplit(maxsplit=1)[-1])


async def set_total(conn: Connection, job_id: uuid.UUID, total: int | None) -> None:
    await conn.execute(Q["set_total"], job_id, total)
