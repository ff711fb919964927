"""``Idempotency-Key`` on the JSON API's POSTs (the IETF httpapi draft's semantics).

:class:`ApiRoute` is the route class of every ``/api/v1`` router. For a POST whose route
is declared idempotent (``access.operation(..., idempotent=True)``) and that carries the
header, before the handler runs:

1. the caller is authenticated (keys belong to a user: two users may use the same key);
2. the key is claimed in ``idempotency_keys`` (as ``api:<key>``) with the request's
   fingerprint (method, path, query, and the body: JSON compared as parsed, so spacing
   and key order do not matter), in a statement of its own that commits at once;
3. a key already claimed answers at once: the stored response again (with
   ``Idempotent-Replayed: true``) for the same fingerprint, **422** for another one,
   **409** while the first request has not answered yet.

The handler's answer is stored with the key, errors included — except the ones worth
retrying with the same key (5xx, 401, 403, 408, 429, an unexpected exception, a request
cancelled because its client hung up), whose claim is released. Keys expire with the
admin forms' after 24 hours (housekeeping). A claim whose request died before answering
is taken over after :data:`ABANDONED_SECONDS`: the work it did, if it committed, is then
done again — the price of keeping the store out of each service's transaction.

Routes not declared idempotent refuse the header (400) rather than ignore it: the token
and API-key endpoints answer with secrets Herald does not store.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import tempfile
import uuid
from collections.abc import Callable, Coroutine
from typing import IO, Any

import regex
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Message, Receive

from herald.api.access import is_idempotent
from herald.auth.web import principal
from herald.core import signing, sql
from herald.core.config import Settings
from herald.core.errors import Conflict, UnprocessableRequest, ValidationError
from herald.core.telemetry import get_logger
from herald.web.errors import handled_response
from herald.web.json_body import StrictJSONRequest, is_json, strict_request
from herald.web.state import AppState, state_of
from herald.web.stored_responses import rebuilt, stored_headers

Q = sql.load("herald.api")
log = get_logger("herald.api")

HEADER = "idempotency-key"
NAMESPACE = "api:"
KEY_LIFETIME_SECONDS = 24 * 3600.0  # as the admin forms' (housekeeping deletes both)
ABANDONED_SECONDS = 300.0
SPOOL_IN_MEMORY = 1024 * 1024  # a non-JSON body beyond this is spooled to a temporary file
REPLAY_CHUNK = 64 * 1024
# Printable ASCII but '"' (the draft's key is a Structured Fields string; quotes allowed).
_KEY_SHAPE = regex.compile(r"[\x21\x23-\x7e]{1,255}")
_STORED_HEADERS = {"content-type", "location"}
_RETRYABLE = {401, 403, 408, 425, 429}


def parse_key(raw: str) -> str:
    key = raw.strip()
    if len(key) >= 2 and key[0] == key[-1] == '"':
        key = key[1:-1]
    if not _KEY_SHAPE.fullmatch(key):
        raise ValidationError(
            "Idempotency-Key must be 1-255 printable ASCII characters (a UUID will do)",
            field="Idempotency-Key",
        )
    return key


async def fingerprint(
    request: StrictJSONRequest, settings: Settings, spool: IO[bytes]
) -> tuple[bytes, StrictJSONRequest]:
    """An HMAC (a key of its own) of the request: a stored fingerprint of a body that held a
    password (``POST /users``) cannot be tried against guesses without the secret key.

    A body that is not JSON (an upload: ``POST /imports``, up to 512 MiB) is hashed as it
    streams in and spooled to ``spool`` (memory, then a temporary file), never held
    whole; the request handed on reads it back from there."""
    digest = hmac.new(signing.purpose_key(settings, "api-idempotency"), digestmod=hashlib.sha256)
    query = sorted(request.query_params.multi_items())
    digest.update(json.dumps([request.method, request.url.path, query]).encode())
    if is_json(request) and await request.body():
        canonical = json.dumps(await request.json(), sort_keys=True, separators=(",", ":"))
        digest.update(b"json:" + canonical.encode())
        return digest.digest(), request
    digest.update(b"raw:")
    boundary = _boundary(request)
    unmarked = _BoundaryMask(boundary) if boundary else None
    async for chunk in request.stream():
        digest.update(unmarked.feed(chunk) if unmarked else chunk)
        spool.write(chunk)
    if unmarked:
        digest.update(unmarked.rest())
    spool.seek(0)
    return digest.digest(), StrictJSONRequest(request.scope, _replaying(spool, request.receive))


def _boundary(request: Request) -> bytes | None:
    """The multipart boundary: random per request (two uploads of the same file differ
    only there), so it is left out of the fingerprint."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/"):
        return None
    for param in content_type.split(";")[1:]:
        name, _, value = param.strip().partition("=")
        if name.lower() == "boundary" and value.strip('"'):
            return b"--" + value.strip('"').encode("latin-1")
    return None


class _BoundaryMask:
    """A stream with each occurrence of ``boundary`` replaced by one mark, fed in chunks
    that may cut it anywhere."""

    def __init__(self, boundary: bytes) -> None:
        self._boundary = boundary
        self._carry = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._carry + chunk
        out: list[bytes] = []
        pos = 0
        while (found := data.find(self._boundary, pos)) >= 0:
            out += (data[pos:found], b"\x00--boundary\x00")
            pos = found + len(self._boundary)
        keep = max(pos, len(data) - len(self._boundary) + 1)
        out.append(data[pos:keep])
        self._carry = data[keep:]
        return b"".join(out)

    def rest(self) -> bytes:
        rest, self._carry = self._carry, b""
        return rest


def _replaying(spool: IO[bytes], receive: Receive) -> Receive:
    """An ASGI ``receive`` that gives the spooled body again, then waits on the real one
    (for the disconnect)."""
    finished = False

    async def replay() -> Message:
        nonlocal finished
        if finished:
            return await receive()
        chunk = spool.read(REPLAY_CHUNK)
        finished = len(chunk) < REPLAY_CHUNK
        return {"type": "http.request", "body": chunk, "more_body": not finished}

    return replay


def _replay(row: Any) -> Response:
    response = rebuilt(row["response_status"], row["response_headers"], row["response_body"])
    response.headers["Idempotent-Replayed"] = "true"
    return response


async def _claim(state: AppState, user_id: uuid.UUID, key: str, print_: bytes) -> Response | None:
    """None: this request owns the key. Otherwise the stored response to answer with."""
    async with state.db.connection() as conn:
        if await conn.fetchval(
            Q["claim_api_key"], user_id, key, print_, KEY_LIFETIME_SECONDS, ABANDONED_SECONDS
        ):
            return None
        row = await conn.fetchrow(Q["api_saved_response"], user_id, key)
    if row is None:  # expired and deleted in between: the client may simply retry
        raise Conflict("this Idempotency-Key is being released; retry the request")
    if bytes(row["request_hash"]) != print_:
        raise UnprocessableRequest(
            "this Idempotency-Key was already used for a different request: use a new key"
        )
    if row["response_status"] is None:
        raise Conflict("a request with this Idempotency-Key is still being processed")
    return _replay(row)


async def _finish(
    state: AppState, user_id: uuid.UUID, key: str, print_: bytes, response: Response | None
) -> None:
    async with state.db.connection() as conn:
        keep = (
            response is not None
            and hasattr(response, "body")
            and response.status_code < 500
            and response.status_code not in _RETRYABLE
        )
        if not keep or response is None:
            await conn.execute(Q["release_api_key"], user_id, key, print_)
            return
        await conn.execute(
            Q["save_api_response"],
            user_id,
            key,
            response.status_code,
            stored_headers(response, _STORED_HEADERS),
            bytes(response.body),
            print_,
        )


async def _idempotently(
    request: StrictJSONRequest,
    raw_key: str,
    handler: Callable[[Request], Coroutine[Any, Any, Response]],
) -> Response:
    key = NAMESPACE + parse_key(raw_key)
    state = state_of(request)
    who = await principal(request, state)
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY) as spool:
        print_, request = await fingerprint(request, state.settings, spool)
        return await _run_claimed(request, state, who.user_id, key, print_, handler)


async def _run_claimed(
    request: StrictJSONRequest,
    state: AppState,
    user_id: uuid.UUID,
    key: str,
    print_: bytes,
    handler: Callable[[Request], Coroutine[Any, Any, Response]],
) -> Response:
    earlier = await _claim(state, user_id, key, print_)
    if earlier is not None:
        return earlier
    try:
        response = await handler(request)
    except asyncio.CancelledError:  # the client went away (or the server stops): retryable
        await asyncio.shield(_finish(state, user_id, key, print_, None))
        raise
    except Exception as exc:
        answer = await handled_response(request, exc)
        await _finish(state, user_id, key, print_, answer)
        if answer is None:
            raise
        return answer
    await _finish(state, user_id, key, print_, response)
    return response


class ApiRoute(APIRoute):
    """The route class of the JSON API: bodies through the strict JSON reader
    (``web/json_body.py``), and ``Idempotency-Key`` on the POSTs declared idempotent."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        idempotent = "POST" in (self.methods or set()) and is_idempotent(self.openapi_extra)

        async def api_handler(request: Request) -> Response:
            strict = await strict_request(request)
            raw_key = strict.headers.get(HEADER)
            if raw_key is None or request.method != "POST":
                return await handler(strict)
            if not idempotent:
                raise ValidationError(
                    "this operation does not take an Idempotency-Key", field="Idempotency-Key"
                )
            return await _idempotently(strict, raw_key, handler)

        return api_handler
