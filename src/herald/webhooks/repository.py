"""The only door to ``webhook_endpoints``, ``webhook_messages`` and ``webhook_attempts``
(migration 0032; the outbox rows themselves are written by its triggers)."""

from __future__ import annotations

import uuid

import asyncpg

from herald.core import sql
from herald.core.db import Connection
from herald.webhooks.domain import (
    Attempt,
    AttemptResult,
    ClaimedMessage,
    Endpoint,
    EndpointDraft,
    EventType,
    Message,
    MessageStatus,
)

Q = sql.load("herald.webhooks")

NEWEST = 2**63 - 1  # a message id past every real one: the first page's keyset


def _endpoint(row: asyncpg.Record) -> Endpoint:
    return Endpoint(
        id=row["id"],
        url=row["url"],
        description=row["description"],
        event_types=tuple(row["event_types"]),
        enabled=row["enabled"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        failing_since=row["failing_since"],
        consecutive_failures=row["consecutive_failures"],
        disabled_at=row["disabled_at"],
        disabled_reason=row["disabled_reason"],
        pending=row["pending"],
        failed=row["failed"],
    )


def _message(row: asyncpg.Record) -> Message:
    return Message(
        id=row["id"],
        endpoint_id=row["endpoint_id"],
        event_type=row["event_type"],
        webhook_id=row["webhook_id"],
        payload=row["payload"],
        status=MessageStatus(row["status"]),
        attempts=row["attempts"],
        available_at=row["available_at"],
        created_at=row["created_at"],
        finished_at=row["finished_at"],
        last_status=row["last_status"],
        last_error=row["last_error"],
    )


async def list_endpoints(conn: Connection, limit: int) -> list[Endpoint]:
    return [_endpoint(row) for row in await conn.fetch(Q["list_endpoints"], limit)]


async def get_endpoint(conn: Connection, endpoint_id: uuid.UUID) -> Endpoint | None:
    row = await conn.fetchrow(Q["get_endpoint"], endpoint_id)
    return _endpoint(row) if row is not None else None


async def lock_endpoint(conn: Connection, endpoint_id: uuid.UUID) -> EndpointDraft | None:
    """The endpoint's editable fields, its row locked to the end of the transaction."""
    row = await conn.fetchrow(Q["lock_endpoint"], endpoint_id)
    if row is None:
        return None
    return EndpointDraft(
        url=row["url"],
        description=row["description"],
        event_types=tuple(EventType(t) for t in row["event_types"]),
        enabled=row["enabled"],
    )


async def count_endpoints(conn: Connection) -> int:
    return int(await conn.fetchval(Q["count_endpoints"]))


async def insert_endpoint(conn: Connection, draft: EndpointDraft, secret: str) -> uuid.UUID:
    endpoint_id: uuid.UUID = await conn.fetchval(
        Q["insert_endpoint"],
        draft.url,
        draft.description,
        [t.value for t in draft.event_types],
        draft.enabled,
        secret,
    )
    return endpoint_id


async def update_endpoint(
    conn: Connection, endpoint_id: uuid.UUID, draft: EndpointDraft
) -> bool | None:
    """The endpoint's ``enabled`` afterwards; None when it does not exist."""
    enabled: bool | None = await conn.fetchval(
        Q["update_endpoint"],
        endpoint_id,
        draft.url,
        draft.description,
        [t.value for t in draft.event_types],
        draft.enabled,
    )
    return enabled


async def set_secret(conn: Connection, endpoint_id: uuid.UUID, secret: str) -> bool:
    return await conn.fetchval(Q["set_secret"], endpoint_id, secret) is not None


async def delete_endpoint(conn: Connection, endpoint_id: uuid.UUID) -> bool:
    return await conn.fetchval(Q["delete_endpoint"], endpoint_id) is not None


async def fail_pending(conn: Connection, endpoint_id: uuid.UUID, reason: str) -> None:
    await conn.execute(Q["fail_pending"], endpoint_id, reason)


async def recent_messages(
    conn: Connection,
    endpoint_id: uuid.UUID,
    *,
    before: int | None,
    status: MessageStatus | None,
    limit: int,
) -> list[Message]:
    after = before if before is not None else NEWEST
    if status is None:
        rows = await conn.fetch(Q["recent_messages"], endpoint_id, after, limit)
    else:
        rows = await conn.fetch(
            Q["recent_messages_by_status"], endpoint_id, after, status.value, limit
        )
    return [_message(row) for row in rows]


async def get_message(conn: Connection, endpoint_id: uuid.UUID, message_id: int) -> Message | None:
    row = await conn.fetchrow(Q["get_message"], message_id, endpoint_id)
    return _message(row) if row is not None else None


async def recent_attempts(
    conn: Connection, endpoint_id: uuid.UUID, *, message_id: int | None, limit: int
) -> list[Attempt]:
    rows = await conn.fetch(Q["recent_attempts"], endpoint_id, message_id, limit)
    return [
        Attempt(
            id=row["id"],
            message_id=row["message_id"],
            event_type=row["event_type"],
            attempted_at=row["attempted_at"],
            duration_ms=row["duration_ms"],
            status_code=row["status_code"],
            error=row["error"],
            response_excerpt=row["response_excerpt"],
        )
        for row in rows
    ]


async def replay_message(conn: Connection, endpoint_id: uuid.UUID, message_id: int) -> bool:
    return await conn.fetchval(Q["replay_message"], message_id, endpoint_id) is not None


async def replay_failed(conn: Connection, endpoint_id: uuid.UUID, limit: int) -> int:
    status = await conn.execute(Q["replay_failed"], endpoint_id, limit)
    return int(status.split()[-1])


async def claim_due(
    conn: Connection, limit: int, lease_seconds: float, token: uuid.UUID
) -> list[ClaimedMessage]:
    rows = await conn.fetch(Q["claim_due"], limit, lease_seconds, token)
    return [
        ClaimedMessage(
            id=row["id"],
            endpoint_id=row["endpoint_id"],
            webhook_id=row["webhook_id"],
            payload=row["payload"],
            attempts=row["attempts"],
            url=row["url"],
            secret=row["secret"],
        )
        for row in rows
    ]


async def record_attempt(
    conn: Connection,
    message: ClaimedMessage,
    token: uuid.UUID,
    result: AttemptResult,
    *,
    status: MessageStatus,
    retry_in: float,
    error: str,
) -> bool:
    """The attempt and the message's new state; False when the lease was lost."""
    written = await conn.fetchval(
        Q["record_attempt"],
        message.id,
        token,
        message.endpoint_id,
        status.value,
        retry_in,
        result.status_code,
        error,
        result.duration_ms,
        result.excerpt,
    )
    return written is not None


async def endpoint_succeeded(conn: Connection, endpoint_id: uuid.UUID) -> None:
    await conn.execute(Q["endpoint_succeeded"], endpoint_id)


async def endpoint_failed(
    conn: Connection,
    endpoint_id: uuid.UUID,
    *,
    after_seconds: float,
    after_failures: int,
    reason: str,
) -> tuple[bool, bool, int]:
    """(just disabled, still enabled, consecutive failures)."""
    row = await conn.fetchrow(
        Q["endpoint_failed"], endpoint_id, after_seconds, after_failures, reason
    )
    if row is None:
        return False, False, 0
    return bool(row["just_disabled"]), bool(row["enabled"]), row["consecutive_failures"]


async def delete_finished_messages(conn: Connection, days: int, batch: int) -> int:
    status = await conn.execute(Q["delete_finished_messages"], days, batch)
    return int(status.split()[-1])
