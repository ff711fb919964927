"""Postmark's webhook bodies, parsed into :class:`ProviderEvent` values. Pure: no web
framework, no database.

Postmark posts one JSON object per event, its ``RecordType`` saying what it is
(https://postmarkapp.com/developer/webhooks/webhooks-overview):

* ``Bounce``: its ``Type`` (Postmark's bounce types, ``/developer/api/bounce-api``) maps to
  a kind below; types that say nothing about the address or the sender (an auto-responder,
  a subscribe request, an open-relay test …) are ignored.
* ``SpamComplaint``: a complaint.
* ``SubscriptionChange``: Postmark's own suppression list changed. ``SuppressSending``
  true: ``provider_unsubscribe`` when the reader unsubscribed (``ManualSuppression`` with
  ``Origin`` ``Recipient``, as Postmark records an unsubscribe), else
  ``provider_suppression`` (a hard bounce, a complaint, an operator's suppression). False
  (a reactivation) is ignored: lifting a suppression is an operator's decision in Herald,
  never a provider's.
* ``Delivery``: delivered.
* Anything else (``Open``, ``Click``, ``Inbound``, a type Postmark adds later) is
  ignored: the webhook still answers 200, so Postmark does not retry it.

The event id, what makes a replay collide: ``bounce:<ID>`` for bounces and complaints
(Postmark's bounce id; a complaint is a bounce record), else a SHA-256 of the record type,
``MessageID``, recipient and the event's time as Postmark wrote them. Herald's delivery id
comes from ``Metadata["herald_delivery"]`` (set at send time by ``email.postmark``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from herald.core.errors import ValidationError
from herald.deliverability.domain import EventKind, Provider, ProviderEvent

METADATA_KEY = "herald_delivery"  # the Metadata field Herald's sends carry
_MAX_DELIVERY_ID = 2**63 - 1

# Postmark's bounce types (``Type``) → kinds; the others are ignored.
BOUNCE_TYPES: dict[str, EventKind] = {
    "HardBounce": EventKind.HARD_BOUNCE,
    "BadEmailAddress": EventKind.HARD_BOUNCE,
    "SoftBounce": EventKind.SOFT_BOUNCE,
    "DnsError": EventKind.SOFT_BOUNCE,  # a temporary DNS error
    "Unknown": EventKind.SOFT_BOUNCE,  # unclassified: counts toward the soft-bounce limit
    "Transient": EventKind.DEFERRED,  # "message delayed": Postmark keeps trying
    "SpamComplaint": EventKind.COMPLAINT,
    "Unsubscribe": EventKind.PROVIDER_UNSUBSCRIBE,
    "ManuallyDeactivated": EventKind.PROVIDER_SUPPRESSION,
    "Unconfirmed": EventKind.PROVIDER_SUPPRESSION,
    # The receiving side refused the sender (reputation, content, authentication).
    "Blocked": EventKind.BLOCKED,
    "SpamNotification": EventKind.BLOCKED,  # classified as spam or rejected content
    "VirusNotification": EventKind.BLOCKED,
    "DMARCPolicy": EventKind.BLOCKED,
}


def check_basic_auth(header: str | None, username: str, password: str) -> bool:
    """Whether an ``Authorization`` header carries exactly ``username:password`` (HTTP
    basic auth). Both parts are compared in constant time, whatever the header holds."""
    supplied = b""
    if header:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() == "basic":
            try:
                supplied = base64.b64decode(token.strip(), validate=True)
            except (binascii.Error, ValueError):
                supplied = b""
    user, sep, secret = supplied.partition(b":")
    # Digests of equal length: the comparison time says nothing about either's length.
    user_ok = hmac.compare_digest(_digest(user), _digest(username.encode()))
    secret_ok = hmac.compare_digest(_digest(secret), _digest(password.encode()))
    return bool(sep) and user_ok and secret_ok


def _digest(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def parse(body: bytes) -> list[ProviderEvent]:
    """The events of one webhook body (none when Postmark told Herald nothing it keeps).
    ``ValidationError`` naming the problem when the body is not a Postmark record."""
    try:
        data = json.loads(body)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ValidationError(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError("the body must be a JSON object (one Postmark webhook record)")
    record_type = data.get("RecordType")
    if not isinstance(record_type, str) or not record_type:
        raise ValidationError("RecordType is missing", field="RecordType")
    parser = _PARSERS.get(record_type)
    event = parser(_Record(data)) if parser is not None else None
    return [event] if event is not None else []


class _Record:
    """Typed access to a record's fields; a wrong type is a 400 naming the field."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def text(self, name: str) -> str:
        value = self.data.get(name)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValidationError(f"{name} must be a string", field=name)
        return value.strip()

    def time(self, name: str) -> datetime:
        """The field as a time; now when it is missing or not ISO 8601 (Postmark always
        sends one; the event is still worth keeping without it)."""
        raw = self.text(name)
        try:
            when = datetime.fromisoformat(raw)
        except ValueError:
            return datetime.now(UTC)
        return when if when.tzinfo is not None else when.replace(tzinfo=UTC)

    def delivery_id(self) -> int | None:
        metadata = self.data.get("Metadata")
        if not isinstance(metadata, dict):
            return None
        raw = metadata.get(METADATA_KEY)
        text = str(raw) if isinstance(raw, (str, int)) and not isinstance(raw, bool) else ""
        if not (0 < len(text) <= 19 and text.isascii() and text.isdigit()):
            return None
        value = int(text)
        return value if 0 < value <= _MAX_DELIVERY_ID else None

    def derived_id(self, prefix: str, *fields: str) -> str:
        parts = "\x1f".join(self.text(name) for name in fields)
        return f"{prefix}:{hashlib.sha256(parts.encode()).hexdigest()}"


def _bounce_id(record: _Record) -> str:
    raw = record.data.get("ID")
    if isinstance(raw, bool) or not isinstance(raw, (int, str)) or not str(raw).strip():
        raise ValidationError("ID must be Postmark's bounce id", field="ID")
    return f"bounce:{str(raw).strip()[:150]}"


def _bounce(record: _Record) -> ProviderEvent | None:
    bounce_type = record.text("Type")
    kind = BOUNCE_TYPES.get(bounce_type)
    if kind is None:
        return None
    return _event(record, _bounce_id(record), kind, record.time("BouncedAt"), "Email", bounce_type)


def _complaint(record: _Record) -> ProviderEvent | None:
    return _event(
        record,
        _bounce_id(record),
        EventKind.COMPLAINT,
        record.time("BouncedAt"),
        "Email",
        "SpamComplaint",
    )


def _subscription_change(record: _Record) -> ProviderEvent | None:
    suppress = record.data.get("SuppressSending")
    if not isinstance(suppress, bool):
        raise ValidationError("SuppressSending must be true or false", field="SuppressSending")
    if not suppress:
        return None  # a reactivation: Herald's suppressions are lifted by an operator
    reason = record.text("SuppressionReason")
    origin = record.text("Origin")
    unsubscribed = reason == "ManualSuppression" and origin == "Recipient"
    kind = EventKind.PROVIDER_UNSUBSCRIBE if unsubscribed else EventKind.PROVIDER_SUPPRESSION
    event_id = record.derived_id(
        "change", "RecordType", "MessageID", "Recipient", "ChangedAt", "SuppressionReason"
    )
    return _event(
        record,
        event_id,
        kind,
        record.time("ChangedAt"),
        "Recipient",
        f"{reason or 'suppressed'} (origin: {origin or 'unknown'})",
    )


def _delivery(record: _Record) -> ProviderEvent | None:
    event_id = record.derived_id("delivery", "RecordType", "MessageID", "Recipient", "DeliveredAt")
    return _event(
        record, event_id, EventKind.DELIVERED, record.time("DeliveredAt"), "Recipient", ""
    )


def _event(
    record: _Record,
    event_id: str,
    kind: EventKind,
    occurred_at: datetime,
    recipient_field: str,
    label: str,
) -> ProviderEvent:
    details = record.text("Details")
    detail = f"{label}: {details}" if label and details else label or details
    return ProviderEvent(
        provider=Provider.POSTMARK,
        event_id=event_id,
        kind=kind,
        occurred_at=occurred_at,
        recipient=record.text(recipient_field)[:320],
        delivery_id=record.delivery_id(),
        message_id=record.text("MessageID")[:200],
        detail=detail,
    )


_PARSERS: dict[str, Callable[[_Record], ProviderEvent | None]] = {
    "Bounce": _bounce,
    "SpamComplaint": _complaint,
    "SubscriptionChange": _subscription_change,
    "Delivery": _delivery,
}
