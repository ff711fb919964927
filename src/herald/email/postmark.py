"""Delivery through the Postmark HTTP API (or anything speaking its dialect).

The worker pushes whole batches through ``/email/batch``, so this module is on the
delivery hot path: one pooled aiohttp session for the life of the provider, bodies
serialised once per call with a shared stdlib encoder, and no per-message objects
beyond the JSON dicts themselves. aiohttp rather than httpx because it measured
markedly faster for this workload (see ``bench/http_clients.py``).

Failures are classified (2xx accepted; 5xx, 429 and timeouts transient; any other
answer permanent) and *returned*, never raised: the caller
decides about retries from ``TransientFailure``/``PermanentFailure`` alone.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable, Sequence
from email.utils import parsedate_to_datetime
from time import time
from typing import Any

import aiohttp

from herald.core.config import EmailSettings
from herald.email.message import (
    Accepted,
    EmailMessage,
    PermanentFailure,
    Pieced,
    SendResult,
    TransientFailure,
)

# One encoder for every call: ``json.dumps`` with arguments builds a new one each time.
# ASCII output so that a lone surrogate in one message cannot make the whole batch
# unencodable (it is escaped instead of raising).
_ENCODER = json.JSONEncoder(separators=(",", ":"))
# The string encoder it uses (the C one): a str in, its JSON in quotes out, ASCII only.
_quote: Callable[[str], str] = json.encoder.encode_basestring_ascii
# Statuses whose Retry-After we pass on to the retry scheduler.
_RETRY_AFTER_STATUSES = frozenset({429, 503})
# The Metadata field carrying Herald's delivery id, so that Postmark's webhooks name the
# delivery an event is about (herald.deliverability.postmark reads it back).
METADATA_KEY = "herald_delivery"
_ERROR_TEXT_LIMIT = 300


def _to_postmark(message: EmailMessage) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "From": message.sender,
        "To": message.recipient,
        "Subject": message.subject,
        "HtmlBody": message.html_body,
        "TextBody": message.text_body,
    }
    if message.headers:
        payload["Headers"] = [{"Name": name, "Value": value} for name, value in message.headers]
    if message.delivery_id is not None:
        payload["Metadata"] = {METADATA_KEY: str(message.delivery_id)}
    return payload


# The JSON of the literal pieces of layouts' HTML (see ``Pieced``), as ASCII bytes: encoded
# once, not once per recipient; a layout's segments are the same objects in every copy, so a
# lookup is an identity check.
_LITERALS: dict[str, bytes] = {}
_MAX_LITERALS = 256


def _encode(message: EmailMessage) -> bytes:
    """``_to_postmark(message)`` as JSON (ASCII bytes)."""
    out: list[bytes] = []
    _encode_into(message, out)
    return b"".join(out)


def _encode_batch(messages: Sequence[EmailMessage]) -> bytes:
    """The messages as one JSON array, joined once: a batch of 500 is megabytes, so it is
    built as bytes from the start (a str joined and then encoded would copy it twice)."""
    out = [b"["]
    for message in messages:
        _encode_into(message, out)
        out.append(b",")
    out[-1] = b"]"
    return b"".join(out)


def _encode_into(message: EmailMessage, out: list[bytes]) -> None:
    """``message``'s JSON as ``_ENCODER.encode(_to_postmark(message))`` writes it, appended to
    ``out`` in parts: each string through the C string encoder, no dict built, and a pieced
    HTML body's literal pieces from the cache (the per-message cost of a batch's JSON)."""
    html = message.html_body
    out.append(
        f'{{"From":{_quote(message.sender)},"To":{_quote(message.recipient)},'
        f'"Subject":{_quote(message.subject)},"HtmlBody":'.encode("ascii")
    )
    if isinstance(html, Pieced):
        out.append(b'"')
        for position, piece in enumerate(html.pieces):
            if position % 2:
                out.append(_quote(piece)[1:-1].encode("ascii"))
                continue
            encoded = _LITERALS.get(piece)
            if encoded is None:
                if len(_LITERALS) >= _MAX_LITERALS:
                    _LITERALS.clear()
                encoded = _LITERALS[piece] = _quote(piece)[1:-1].encode("ascii")
            out.append(encoded)
        out.append(b'"')
    else:
        out.append(_quote(html).encode("ascii"))
    tail = f',"TextBody":{_quote(message.text_body)}'
    if message.headers:
        headers = ",".join(
            f'{{"Name":{_quote(name)},"Value":{_quote(value)}}}' for name, value in message.headers
        )
        tail = f'{tail},"Headers":[{headers}]'
    if message.delivery_id is not None:
        # An int's digits need no escaping; Postmark's metadata values are strings.
        tail = f'{tail},"Metadata":{{"{METADATA_KEY}":"{int(message.delivery_id)}"}}'
    out.append(f"{tail}}}".encode("ascii"))


def _parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait, from either form RFC 9110 allows (delta-seconds or an HTTP date)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


def _describe_error(status: int, raw: bytes) -> str:
    """Postmark's own ``ErrorCode``/``Message`` when the body has them: they say what to fix."""
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict) and ("ErrorCode" in data or "Message" in data):
        return (
            f"HTTP {status}: Postmark ErrorCode {data.get('ErrorCode')}: {data.get('Message', '')}"
        )
    text = raw[:_ERROR_TEXT_LIMIT].decode("utf-8", "replace").strip()
    return f"HTTP {status}: {text}" if text else f"HTTP {status}"


def _classify_status(
    status: int, raw: bytes, retry_after: str | None, location: str | None = None
) -> SendResult:
    """A non-2xx answer, for every message of the call: 5xx and 429 transient (429's
    ``Retry-After`` honoured), redirects and other 4xx permanent."""
    if 300 <= status < 400:
        # Redirects are never followed: a 301/302 would turn the POST into a GET that
        # answers 200 (counted as accepted), and any redirect would hand the server
        # token to whatever the Location names. Postmark's API does not redirect, so
        # this is a wrong base URL (http for https, a proxy, a typo): every retry would
        # get the same answer until the operator fixes it, hence permanent, like a 401.
        target = f" to {location[:_ERROR_TEXT_LIMIT]}" if location else ""
        return PermanentFailure(
            f"HTTP {status}: the Postmark API answered with a redirect{target}, which Herald "
            f"does not follow; check HERALD_EMAIL__POSTMARK__BASE_URL"
        )
    error = _describe_error(status, raw)
    if status >= 500 or status == 429:
        hint = _parse_retry_after(retry_after) if status in _RETRY_AFTER_STATUSES else None
        return TransientFailure(error, retry_after=hint)
    if status >= 400:
        return PermanentFailure(error)
    # 1xx should never reach us; retrying is the safe reading.
    return TransientFailure(error)


def _batch_results(raw: bytes, expected: int) -> list[SendResult]:
    """One result per message from a 2xx ``/email/batch`` answer.

    A body we cannot map back onto the messages says nothing trustworthy about any of
    them, so all of them are retried rather than guessed at.
    """
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, list) or len(data) != expected:
        shape = f"list of {len(data)}" if isinstance(data, list) else type(data).__name__
        failure = TransientFailure(
            f"malformed batch response: expected a list of {expected} results, got {shape}"
        )
        return [failure] * expected
    results: list[SendResult] = []
    append = results.append
    for item in data:
        code = item.get("ErrorCode") if isinstance(item, dict) else None
        if code == 0:
            message_id = item.get("MessageID")
            append(Accepted(str(message_id) if message_id is not None else None))
        elif isinstance(code, int) and not isinstance(code, bool):
            append(PermanentFailure(f"Postmark ErrorCode {code}: {item.get('Message', '')}"))
        else:
            append(TransientFailure(f"malformed batch result without an ErrorCode: {item!r:.200}"))
    return results


class PostmarkProvider:
    """``EmailProvider`` for the Postmark API: ``/email`` for one message, ``/email/batch``
    for more, at most 500 per call (Postmark's own limit)."""

    name = "postmark"
    max_batch_size = 500

    def __init__(self, settings: EmailSettings) -> None:
        postmark = settings.postmark
        if not postmark.batch:
            # Every message its own ``/email`` call; the worker runs up to its
            # send_concurrency of them at once.
            self.max_batch_size = 1
        base = postmark.base_url.rstrip("/")
        self._single_url = f"{base}/email"
        self._batch_url = f"{base}/email/batch"
        self._timeout_seconds = settings.timeout_seconds
        self._max_connections = postmark.max_connections
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        if postmark.server_token is not None:
            headers["X-Postmark-Server-Token"] = postmark.server_token.get_secret_value()
        self._headers = headers
        self._session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # Created on first use because a session belongs to the loop it is made in.
        session = self._session
        if session is None or session.closed:
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(total=self._timeout_seconds),
                headers=self._headers,
            )
            self._session = session
        return session

    async def send_batch(self, messages: Sequence[EmailMessage]) -> list[SendResult]:
        size = self.max_batch_size
        if len(messages) <= size:
            return await self._send_chunk(messages)
        chunks = [messages[start : start + size] for start in range(0, len(messages), size)]
        parts = await asyncio.gather(*(self._send_chunk(chunk) for chunk in chunks))
        return [result for part in parts for result in part]

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()

    async def _send_chunk(self, messages: Sequence[EmailMessage]) -> list[SendResult]:
        count = len(messages)
        if count == 0:
            return []
        if count == 1:
            return [await self._send_single(messages[0])]
        body = _encode_batch(messages)
        answer = await self._post(self._batch_url, body)
        if isinstance(answer, str):
            return [TransientFailure(answer)] * count
        status, raw, retry_after, location = answer
        if 200 <= status < 300:
            return _batch_results(raw, count)
        return [_classify_status(status, raw, retry_after, location)] * count

    async def _send_single(self, message: EmailMessage) -> SendResult:
        body = _encode(message)
        answer = await self._post(self._single_url, body)
        if isinstance(answer, str):
            return TransientFailure(answer)
        status, raw, retry_after, location = answer
        if 200 <= status < 300:
            return Accepted(_single_message_id(raw))
        return _classify_status(status, raw, retry_after, location)

    async def _post(self, url: str, body: bytes) -> tuple[int, bytes, str | None, str | None] | str:
        """``(status, body, Retry-After, Location)`` when the server answered, else why it
        did not (timeouts, refused or dropped connections: all transient for the caller).
        Redirects are returned, never followed (see ``_classify_status``)."""
        try:
            async with self._get_session().post(url, data=body, allow_redirects=False) as response:
                raw = await response.read()
                headers = response.headers
                return response.status, raw, headers.get("Retry-After"), headers.get("Location")
        except TimeoutError:  # before OSError, of which it is a subclass
            return f"no answer from {url} within {self._timeout_seconds:g}s"
        except (aiohttp.ClientError, OSError) as exc:
            return f"POST {url} failed: {type(exc).__name__}: {exc}"


def _single_message_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    message_id = data.get("MessageID") if isinstance(data, dict) else None
    return str(message_id) if message_id is not None else None
