"""The event model shared by every adapter: kinds, providers, one event. Pure: no web
framework, no database."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from herald.core.errors import ValidationError

MAX_EVENT_ID_LENGTH = 200  # email_events.provider_event_id's CHECK
MAX_DETAIL_LENGTH = 1000  # email_events.detail's CHECK
# An email address as servers and providers quote it in a diagnostic ("<ada@example.net>").
_ADDRESS = re.compile(r"<?[^\s<>()\[\]\"',;:@]+@[^\s<>()\[\]\"',;:@]+>?")


def without_addresses(text: str) -> str:
    """``text`` with every email address in it as ``<address>``: servers quote the
    recipient ("550 5.1.1 <ada@example.net>: …"), and an event's detail keeps no address
    in clear (migration 0027: an erased reader's events keep only the address key)."""
    return _ADDRESS.sub("<address>", text)


class EventKind(StrEnum):
    """What happened to a message after it was sent, as the email provider or the
    receiving server reported it."""

    # The docstring is the API's public description; the values are migration 0027's
    # CHECK on email_events.kind.

    DELIVERED = "delivered"  # the receiving server accepted it
    DEFERRED = "deferred"  # delayed; the provider keeps trying
    HARD_BOUNCE = "hard_bounce"  # permanent: the address does not exist or never accepts
    SOFT_BOUNCE = "soft_bounce"  # temporary: mailbox full, server down
    BLOCKED = "blocked"  # refused because of the sender (reputation, content, policy)
    COMPLAINT = "complaint"  # the reader marked it as spam
    PROVIDER_UNSUBSCRIBE = "provider_unsubscribe"  # unsubscribed through the provider
    PROVIDER_SUPPRESSION = "provider_suppression"  # the provider will not send to it

    @property
    def is_failure(self) -> bool:
        return self in _FAILURES


_FAILURES = frozenset(
    {EventKind.HARD_BOUNCE, EventKind.SOFT_BOUNCE, EventKind.BLOCKED, EventKind.COMPLAINT}
)


class Provider(StrEnum):
    """Who reported the event (migration 0027's ``provider``)."""

    POSTMARK = "postmark"
    SES = "ses"
    SMTP = "smtp"


@dataclass(frozen=True, slots=True)
class ProviderEvent:
    """One event as an adapter parsed it, before it is matched to a delivery and stored.

    ``event_id`` is the provider's own identity of the event (what a replay repeats);
    ``detail`` is the provider's description, every address in it replaced by
    ``<address>`` (whatever the adapter, no event keeps an address in clear);
    ``delivery_id`` is Herald's delivery id when the message carried it (Postmark
    ``Metadata``, a VERP return path, an SES message tag), ``message_id`` the provider's
    message id (``deliveries.provider_message_id``) as the fallback; ``recipient`` the
    address the event is about, as the provider wrote it.
    """

    provider: Provider
    event_id: str
    kind: EventKind
    occurred_at: datetime
    recipient: str = ""
    delivery_id: int | None = None
    message_id: str = ""
    detail: str = ""

    def __post_init__(self) -> None:
        # Postgres text holds no NUL: whatever an adapter read (a JSON "\u0000", a bounce's
        # diagnostic), it is dropped here rather than failing the batch's statement.
        for name in ("event_id", "recipient", "message_id", "detail"):
            value = getattr(self, name)
            if "\x00" in value:
                object.__setattr__(self, name, value.replace("\x00", ""))
        if not 0 < len(self.event_id) <= MAX_EVENT_ID_LENGTH:
            raise ValidationError(
                f"an event id must be 1 to {MAX_EVENT_ID_LENGTH} characters", field="event_id"
            )
        if self.occurred_at.tzinfo is None:
            raise ValidationError("an event's time must carry its time zone", field="occurred_at")
        detail = without_addresses(self.detail) if "@" in self.detail else self.detail
        if len(detail) > MAX_DETAIL_LENGTH:
            detail = detail[: MAX_DETAIL_LENGTH - 1] + "…"
        object.__setattr__(self, "detail", detail)


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """What the recorder did with one event."""

    event: ProviderEvent
    stored: bool  # False: a replay (the same provider event id was stored before)
    delivery_id: int | None  # the delivery it was matched to, if any
    subscriber_id: uuid.UUID | None
    suppressed: bool  # the policy put the address on the suppression list
