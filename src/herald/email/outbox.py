"""The development outbox: "sending" stores the message in Postgres.

``herald outbox`` and, in development, ``/dev/outbox`` show what was sent, so a
newcomer can follow a confirmation link without any mail setup.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from herald.core import sql
from herald.core.db import Connection, Database
from herald.core.errors import Unavailable
from herald.email.message import Accepted, EmailMessage, SendResult, TransientFailure

Q = sql.load("herald.email")


@dataclass(frozen=True, slots=True)
class StoredMessage:
    id: int
    message_id: uuid.UUID
    sender: str
    recipient: str
    subject: str
    html_body: str
    text_body: str
    headers: list[tuple[str, str]]
    created_at: datetime


class OutboxProvider:
    name = "outbox"
    max_batch_size = 500

    def __init__(self, db: Database) -> None:
        self._db = db

    async def send_batch(self, messages: Sequence[EmailMessage]) -> list[SendResult]:
        ids = [uuid.uuid4() for _ in messages]
        try:
            async with self._db.connection() as conn:
                await conn.execute(
                    Q["store"],
                    ids,
                    [m.sender for m in messages],
                    [m.recipient for m in messages],
                    [m.subject for m in messages],
                    [m.html_body for m in messages],
                    [m.text_body for m in messages],
                    [json.dumps([list(h) for h in m.headers]) for m in messages],
                )
        except Unavailable as exc:
            return [TransientFailure(f"outbox unavailable: {exc.message}") for _ in messages]
        return [Accepted(str(message_id)) for message_id in ids]

    async def aclose(self) -> None:
        return None


async def list_messages(
    conn: Connection, *, recipient: str | None = None, limit: int = 1000
) -> list[StoredMessage]:
    rows = await conn.fetch(Q["list_messages"], recipient, limit)
    return [
        StoredMessage(
            id=row["id"],
            message_id=row["message_id"],
            sender=row["sender"],
            recipient=row["recipient"],
            subject=row["subject"],
            html_body=row["html_body"],
            text_body=row["text_body"],
            headers=[(str(n), str(v)) for n, v in json.loads(row["headers"])],
            created_at=row["created_at"],
        )
        for row in rows
    ]


async def read_outbox(
    db: Database, *, recipient: str | None = None, limit: int = 1000
) -> list[StoredMessage]:
    """The messages the outbox provider holds, oldest first (the development outbox page)."""
    async with db.connection() as conn:
        return await list_messages(conn, recipient=recipient, limit=limit)
