"""Outgoing webhooks, the pure part: event types, endpoint URLs and drafts, secrets, the
Standard Webhooks signature, and what an attempt's outcome means for its message.

Signing follows the Standard Webhooks specification (https://www.standardwebhooks.com):
the secret is ``whsec_`` + base64 of 32 random bytes; each attempt carries
``webhook-id`` (the message's, the same on every retry: receivers deduplicate by it),
``webhook-timestamp`` (the attempt's, in Unix seconds: receivers refuse old ones) and
``webhook-signature: v1,<base64 of HMAC-SHA256(key, "id.timestamp.body")>``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import secrets
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from herald.core.errors import ValidationError

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32
MAX_URL = 2000
MAX_DESCRIPTION = 300
MAX_ERROR = 300
MAX_EXCERPT = 500
DISABLED_PENDING = "endpoint disabled before this message was sent"
READ_LIMIT = 2048  # bytes of a response body read at most (the excerpt comes from them)


class EventType(StrEnum):
    """What a receiver can subscribe to (migration 0032's CHECK lists the same values)."""

    SUBSCRIBER_CREATED = "subscriber.created"
    SUBSCRIBER_CONFIRMED = "subscriber.confirmed"
    SUBSCRIBER_UNSUBSCRIBED = "subscriber.unsubscribed"
    SUBSCRIBER_ERASED = "subscriber.erased"
    ISSUE_PUBLISHED = "issue.published"
    ISSUE_SENT = "issue.sent"
    DELIVERY_FAILED = "delivery.failed"
    DELIVERY_BOUNCED = "delivery.bounced"
    DELIVERY_COMPLAINED = "delivery.complained"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    EventType.SUBSCRIBER_CREATED: "an address signed up, was imported or added (also again "
    "after unsubscribing: resubscribed)",
    EventType.SUBSCRIBER_CONFIRMED: "an address was confirmed",
    EventType.SUBSCRIBER_UNSUBSCRIBED: "a subscriber unsubscribed from everything, or was "
    "suppressed",
    EventType.SUBSCRIBER_ERASED: "a subscriber's data was deleted (the id alone)",
    EventType.ISSUE_PUBLISHED: "an issue started sending",
    EventType.ISSUE_SENT: "an issue finished sending",
    EventType.DELIVERY_FAILED: "an email could not be sent (attempts used up or refused)",
    EventType.DELIVERY_BOUNCED: "a provider reported a hard or soft bounce",
    EventType.DELIVERY_COMPLAINED: "a reader marked an email as spam",
}


def parse_event_types(values: Iterable[str]) -> tuple[EventType, ...]:
    """The event types named, deduplicated, in the enum's order; at least one."""
    chosen: set[EventType] = set()
    for raw in values:
        value = raw.strip()
        try:
            chosen.add(EventType(value))
        except ValueError:
            shown = value[:40] + ("…" if len(value) > 40 else "")
            raise ValidationError(
                f"Unknown event type {shown!r}: choose among "
                + ", ".join(t.value for t in EventType)
                + ".",
                field="event_types",
            ) from None
    if not chosen:
        raise ValidationError("Choose at least one event type.", field="event_types")
    return tuple(t for t in EventType if t in chosen)


def parse_url(raw: str, *, development: bool) -> str:
    """An endpoint URL, or a :class:`ValidationError` naming what is wrong with it.

    ``https://`` always; ``http://`` only in development and only to this machine or a
    private network (a receiver on a laptop or in a compose network). Refused: other
    schemes, credentials in the URL (put them in the receiver's own check of the
    signature instead), a fragment, no host, spaces or control characters, and — in
    production — ``localhost`` and loopback, private, link-local or reserved IP literals
    (a webhook is not a way to reach the server's own network).
    """
    url = raw.strip()
    if not url:
        raise ValidationError("Enter the endpoint's URL.", field="url")
    if len(url) > MAX_URL:
        raise ValidationError(f"The URL is longer than {MAX_URL} characters.", field="url")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in url):
        raise ValidationError("The URL contains spaces or control characters.", field="url")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValidationError(
            "The URL is not valid (check its host and port).", field="url"
        ) from None
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https"}:
        raise ValidationError("The URL must start with https://.", field="url")
    host = (parts.hostname or "").lower()
    if not host:
        raise ValidationError("The URL has no host.", field="url")
    if parts.username is not None or parts.password is not None:
        raise ValidationError("The URL must not contain a user name or password.", field="url")
    if parts.fragment or url.endswith("#"):
        raise ValidationError("The URL must not contain a fragment (#…).", field="url")
    if port == 0:
        raise ValidationError("The URL's port must be 1-65535.", field="url")
    local = _is_local(host)
    if scheme == "http" and not (development and local):
        raise ValidationError(
            "The URL must start with https:// (plain http:// is accepted only in development, "
            "to this machine or a private network).",
            field="url",
        )
    if local and not development:
        raise ValidationError(
            "The URL points at this machine or a private network: use a public https:// URL.",
            field="url",
        )
    return url


def _is_local(host: str) -> bool:
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def parse_description(raw: str) -> str:
    text = " ".join(raw.split())
    if "\x00" in text:
        raise ValidationError("The description contains a NUL character.", field="description")
    if len(text) > MAX_DESCRIPTION:
        raise ValidationError(
            f"The description is longer than {MAX_DESCRIPTION} characters.", field="description"
        )
    return text


@dataclass(frozen=True, slots=True)
class EndpointDraft:
    """What an admin asks for; every field checked."""

    url: str
    description: str
    event_types: tuple[EventType, ...]
    enabled: bool = True

    @classmethod
    def parse(
        cls,
        *,
        url: str,
        description: str,
        event_types: Iterable[str],
        enabled: bool = True,
        development: bool,
    ) -> EndpointDraft:
        return cls(
            url=parse_url(url, development=development),
            description=parse_description(description),
            event_types=parse_event_types(event_types),
            enabled=enabled,
        )


def new_secret() -> str:
    """A fresh Standard Webhooks secret: ``whsec_`` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def secret_key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("not a whsec_ secret")
    try:
        return base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error as exc:
        raise ValueError("not a whsec_ secret") from exc


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value of one attempt."""
    signed = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def signed_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, webhook_id, timestamp, body),
    }


class MessageStatus(StrEnum):
    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: uuid.UUID
    url: str
    description: str
    event_types: tuple[str, ...]
    enabled: bool
    created_at: datetime
    updated_at: datetime
    failing_since: datetime | None
    consecutive_failures: int
    disabled_at: datetime | None
    disabled_reason: str | None
    pending: int = 0
    failed: int = 0

    @property
    def auto_disabled(self) -> bool:
        """Disabled by Herald because it kept failing (not by a person)."""
        return not self.enabled and bool(self.disabled_reason)


@dataclass(frozen=True, slots=True)
class Message:
    id: int
    endpoint_id: uuid.UUID
    event_type: str
    webhook_id: str
    payload: str
    status: MessageStatus
    attempts: int
    available_at: datetime
    created_at: datetime
    finished_at: datetime | None
    last_status: int | None
    last_error: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    message_id: int
    event_type: str
    attempted_at: datetime
    duration_ms: int
    status_code: int | None
    error: str
    response_excerpt: str

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True, slots=True)
class ClaimedMessage:
    """A message a sender holds under a lease, with what it needs to send it."""

    id: int
    endpoint_id: uuid.UUID
    webhook_id: str
    payload: str
    attempts: int  # including this one
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What one HTTP attempt gave: a status (any, 3xx included) or an error."""

    status_code: int | None
    error: str
    excerpt: str
    duration_ms: int
    retry_after: float | None = None  # a 429's or 503's Retry-After, in seconds

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def clip(text: str, limit: int) -> str:
    text = text.replace("\x00", "")
    return text if len(text) <= limit else text[: limit - 1] + "…"


def excerpt(body: bytes) -> str:
    """A bounded, printable excerpt of a response body."""
    text = body.decode("utf-8", errors="replace")
    printable = "".join(ch if ch.isprintable() or ch in "\n\t" else " " for ch in text)
    return clip(printable.strip(), MAX_EXCERPT)


def gives_up(attempts: int, max_attempts: int) -> bool:
    """No attempt is left after ``attempts`` failed ones."""
    return attempts >= max_attempts
