"""Idempotent form submissions: a key per form render, scoped per user, kept 24 hours.

The first request with a key does the work and stores its response *in the same
transaction*; any later request with that key replays the stored response and
does nothing. Two requests racing with one key resolve to one: the second's
insert waits on the first's uncommitted row, then replays what it committed.
The same key with a different payload is refused (422).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import regex
from starlette.responses import Response

from herald.core import sql
from herald.core.db import Connection
from herald.core.errors import UnprocessableRequest, ValidationError
from herald.web.stored_responses import rebuilt, stored_headers

Q = sql.load("herald.admin")

KEY_LIFETIME_SECONDS = 24 * 3600.0
_KEY_SHAPE = regex.compile(r"[A-Za-z0-9_-]{1,100}")
_REPLAYED_HEADERS = {"location", "set-cookie", "content-type"}


def parse_key(raw: str | None) -> str:
    key = (raw or "").strip()
    if not key:
        raise ValidationError(
            "idempotency_key is missing: reload the form", field="idempotency_key"
        )
    if not _KEY_SHAPE.fullmatch(key):
        raise ValidationError(
            "idempotency_key must be 1-100 letters, digits, '-' or '_'", field="idempotency_key"
        )
    return key


def request_hash(*fields: str) -> bytes:
    return hashlib.sha256(json.dumps(fields).encode()).digest()


@dataclass(frozen=True, slots=True)
class Replay:
    response: Response


async def begin(
    conn: Connection, user_id: uuid.UUID, key: str, fingerprint: bytes
) -> Replay | None:
    """None: go ahead (this request owns the key). Replay: answer with the stored response."""
    if await conn.fetchval(Q["claim_key"], user_id, key, fingerprint, KEY_LIFETIME_SECONDS):
        return None
    row = await conn.fetchrow(Q["saved_response"], user_id, key)
    if row is None or row["response_status"] is None:  # pragma: no cover - holder vanished
        raise UnprocessableRequest("this form submission is still being processed; retry shortly")
    if bytes(row["request_hash"]) != fingerprint:
        raise UnprocessableRequest(
            "this idempotency key was already used for a different submission: reload the form"
        )
    return Replay(rebuilt(row["response_status"], row["response_headers"], row["response_body"]))


async def save(conn: Connection, user_id: uuid.UUID, key: str, response: Response) -> None:
    await conn.execute(
        Q["save_response"],
        user_id,
        key,
        response.status_code,
        stored_headers(response, _REPLAYED_HEADERS),
        bytes(response.body),
    )


@dataclass(frozen=True)
class StoredResponse:
    """A form submission answered once per key: ``respond`` makes the first response, which
    is stored with the key and replayed for any later request with it (an ``issues.service.
    Once``: the service that does the work holds it in its transaction)."""

    user_id: uuid.UUID
    key: str
    fingerprint: bytes
    respond: Callable[[], Response]

    async def earlier(self, conn: Connection) -> Response | None:
        replay = await begin(conn, self.user_id, self.key, self.fingerprint)
        return replay.response if replay is not None else None

    async def done(self, conn: Connection) -> Response:
        response = self.respond()
        await save(conn, self.user_id, self.key, response)
        return response


async def delete_expired(conn: Connection) -> int:
    status = await conn.execute(Q["delete_expired_keys"], KEY_LIFETIME_SECONDS)
    return int(status.split()[-1])
