"""Amazon SES's notifications (the ``Message`` of an SNS notification) as Herald's events.
Pure: no web framework, no database, no network.

Both of SES's formats are read: an identity's feedback notifications (``notificationType``)
and a configuration set's event publishing (``eventType``). What each becomes:

* ``Bounce``: ``Permanent`` → ``hard_bounce``, but ``Permanent``/``Suppressed`` and
  ``OnAccountSuppressionList`` (SES did not even try: the address is on its suppression
  list) → ``provider_suppression``; ``Transient`` and ``Undetermined`` → ``soft_bounce``,
  but ``Transient``/``ContentRejected`` and ``AttachmentRejected`` (the receiver refused
  what was sent, not the reader's mailbox) → ``blocked``. One event per bounced recipient.
* ``Complaint`` → ``complaint`` per complained recipient (``OnAccountSuppressionList``:
  ``provider_suppression``); a ``not-spam`` feedback report is no complaint and is passed over.
* ``Delivery`` → ``delivered``, ``DeliveryDelay`` → ``deferred``, ``Reject`` (SES refused
  to send it, e.g. a virus) → ``blocked``, per recipient.
* ``Subscription`` (SES's own list management) with ``unsubscribeAll`` →
  ``provider_unsubscribe``.
* Anything else (``Send``, ``Open``, ``Click``, ``Rendering Failure``, SES's
  ``AmazonSnsSubscriptionSucceeded`` test message) → no event.

The event id: SES's ``feedbackId`` and the recipient for bounces and complaints (what
SES repeats when it repeats the notification); for the other kinds, which have no
feedback id, the kind, SES's message id and the recipient (and the delay's time: a
message may be delayed more than once) — stable across SNS's retries and across two
topics carrying the same event. An id over 200 characters is replaced by its SHA-256.

The delivery: Herald's delivery id from the message tag ``herald_delivery`` (event
publishing carries ``mail.tags``), else the message id. Herald sends through SES's SMTP
interface and records its own ``Message-ID`` as the provider's message id; SES replaces
that header but reports the original in ``mail.commonHeaders.messageId`` (with "include
original headers" on an identity's notifications, always in event publishing), which is
what is matched; without it, SES's own ``mail.messageId``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from email.utils import parseaddr
from typing import Any

from herald.core.errors import ValidationError
from herald.deliverability.domain import (
    MAX_EVENT_ID_LENGTH,
    EventKind,
    Provider,
    ProviderEvent,
)

DELIVERY_TAG = "herald_delivery"
MAX_RECIPIENTS = 100  # SES sends to 50 at most; anything beyond is not SES's
_SUPPRESSED = frozenset({"Suppressed", "OnAccountSuppressionList"})
_REFUSED_CONTENT = frozenset({"ContentRejected", "AttachmentRejected"})
_DELIVERY_ID = re.compile(r"[1-9]\d{0,17}")

Object = Mapping[str, Any]


def parse_notification(message: str, *, sns_message_id: str) -> list[ProviderEvent]:
    """The events in one SES notification; ValidationError when it is not one."""
    try:
        data = json.loads(message)
    except (ValueError, RecursionError) as exc:
        raise ValidationError("the SNS message is not an SES notification: not JSON") from exc
    if not isinstance(data, dict):
        raise ValidationError("the SES notification is not a JSON object")
    kind = data.get("notificationType", data.get("eventType"))
    if not isinstance(kind, str) or kind not in _PARSERS:
        return []
    parse, body_name = _PARSERS[kind]
    mail = _object(data, "mail")
    body = _object(data, body_name)
    return list(parse(_Context(mail, body, sns_message_id)))


class _Context:
    """What every event of one notification shares: its mail and its kind's object."""

    def __init__(self, mail: Object, body: Object, sns_message_id: str) -> None:
        self.mail = mail
        self.body = body
        self.sns_message_id = sns_message_id
        self.ses_message_id = _text(mail, "messageId")
        self.delivery_id = _delivery_id(mail)
        headers = mail.get("commonHeaders")
        original = _text(headers, "messageId") if isinstance(headers, dict) else ""
        self.message_id = original or self.ses_message_id

    def time(self, field: str = "timestamp") -> datetime:
        return _time(_text(self.body, field) or _text(self.mail, "timestamp"))

    def event(
        self, kind: EventKind, recipient: str, occurred_at: datetime, detail: str, *key: str
    ) -> ProviderEvent:
        return ProviderEvent(
            provider=Provider.SES,
            event_id=_event_id(*key),
            kind=kind,
            occurred_at=occurred_at,
            recipient=recipient,
            delivery_id=self.delivery_id,
            message_id=self.message_id[:998],
            detail=detail,
        )

    def feedback_id(self) -> str:
        return _text(self.body, "feedbackId") or self.sns_message_id

    def destination(self) -> list[str]:
        found = self.mail.get("destination")
        addresses = [_address(a) for a in found if isinstance(a, str)] if found else []
        return [a for a in addresses if a][:MAX_RECIPIENTS]


def _bounce(ctx: _Context) -> Iterator[ProviderEvent]:
    bounce_type = _text(ctx.body, "bounceType")
    sub_type = _text(ctx.body, "bounceSubType")
    if sub_type in _SUPPRESSED:
        kind = EventKind.PROVIDER_SUPPRESSION
    elif bounce_type == "Permanent":
        kind = EventKind.HARD_BOUNCE
    elif sub_type in _REFUSED_CONTENT:
        kind = EventKind.BLOCKED
    else:  # Transient, Undetermined, or a type SES may add
        kind = EventKind.SOFT_BOUNCE
    when = ctx.time()
    for recipient in _recipients(ctx.body, "bouncedRecipients"):
        address = _address(_text(recipient, "emailAddress"))
        if not address:
            continue
        diagnostic = _text(recipient, "diagnosticCode") or _text(recipient, "status")
        detail = f"{bounce_type or 'Bounce'}/{sub_type or '-'}" + (
            f": {diagnostic}" if diagnostic else ""
        )
        yield ctx.event(kind, address, when, detail, ctx.feedback_id(), address)


def _complaint(ctx: _Context) -> Iterator[ProviderEvent]:
    feedback = _text(ctx.body, "complaintFeedbackType")
    if feedback == "not-spam":
        return
    suppressed = _text(ctx.body, "complaintSubType") in _SUPPRESSED
    kind = EventKind.PROVIDER_SUPPRESSION if suppressed else EventKind.COMPLAINT
    detail = f"complaint: {feedback}" if feedback else "complaint"
    when = ctx.time()
    for recipient in _recipients(ctx.body, "complainedRecipients"):
        address = _address(_text(recipient, "emailAddress"))
        if address:
            yield ctx.event(kind, address, when, detail, ctx.feedback_id(), address)


def _delivery(ctx: _Context) -> Iterator[ProviderEvent]:
    found = ctx.body.get("recipients")
    addresses = [_address(a) for a in found if isinstance(a, str)] if found else []
    detail = _text(ctx.body, "smtpResponse")
    when = ctx.time()
    for address in [a for a in addresses if a][:MAX_RECIPIENTS]:
        key = ("delivery", ctx.ses_message_id or ctx.sns_message_id, address)
        yield ctx.event(EventKind.DELIVERED, address, when, detail, *key)


def _delay(ctx: _Context) -> Iterator[ProviderEvent]:
    delay_type = _text(ctx.body, "delayType")
    stamp = _text(ctx.body, "timestamp")
    when = ctx.time()
    for recipient in _recipients(ctx.body, "delayedRecipients"):
        address = _address(_text(recipient, "emailAddress"))
        if not address:
            continue
        diagnostic = _text(recipient, "diagnosticCode") or _text(recipient, "status")
        detail = f"{delay_type or 'delayed'}" + (f": {diagnostic}" if diagnostic else "")
        key = ("delay", ctx.ses_message_id or ctx.sns_message_id, address, stamp)
        yield ctx.event(EventKind.DEFERRED, address, when, detail, *key)


def _reject(ctx: _Context) -> Iterator[ProviderEvent]:
    detail = f"rejected by SES: {_text(ctx.body, 'reason') or 'no reason given'}"
    when = _time(_text(ctx.mail, "timestamp"))
    for address in ctx.destination():
        key = ("reject", ctx.ses_message_id or ctx.sns_message_id, address)
        yield ctx.event(EventKind.BLOCKED, address, when, detail, *key)


def _subscription(ctx: _Context) -> Iterator[ProviderEvent]:
    preferences = ctx.body.get("newTopicPreferences")
    if not isinstance(preferences, dict) or preferences.get("unsubscribeAll") is not True:
        return
    stamp = _text(ctx.body, "timestamp")
    when = ctx.time()
    detail = f"unsubscribed from all through SES ({_text(ctx.body, 'source') or 'unknown'})"
    for address in ctx.destination():
        key = ("unsubscribe", ctx.ses_message_id or ctx.sns_message_id, address, stamp)
        yield ctx.event(EventKind.PROVIDER_UNSUBSCRIBE, address, when, detail, *key)


# Each kind's parser and the name of its object in the notification.
_PARSERS: dict[str, tuple[Callable[[_Context], Iterator[ProviderEvent]], str]] = {
    "Bounce": (_bounce, "bounce"),
    "Complaint": (_complaint, "complaint"),
    "Delivery": (_delivery, "delivery"),
    "DeliveryDelay": (_delay, "deliveryDelay"),
    "Reject": (_reject, "reject"),
    "Subscription": (_subscription, "subscription"),
}


def _object(data: Object, name: str) -> Object:
    value = data.get(name)
    if not isinstance(value, dict):
        raise ValidationError(f"the SES notification lacks its {name!r} object")
    return value


def _text(data: Object, name: str) -> str:
    value = data.get(name)
    return value if isinstance(value, str) else ""


def _recipients(body: Object, name: str) -> Sequence[Object]:
    found = body.get(name)
    if not isinstance(found, list):
        return []
    return [r for r in found if isinstance(r, dict)][:MAX_RECIPIENTS]


def _address(value: str) -> str:
    """The address itself, also when SES wrote ``Name <address>``."""
    if len(value) > 320:
        return ""
    _, address = parseaddr(value)
    return address.strip()


def _delivery_id(mail: Object) -> int | None:
    tags = mail.get("tags")
    if not isinstance(tags, dict):
        return None
    values = tags.get(DELIVERY_TAG)
    first = values[0] if isinstance(values, list) and values else None
    if isinstance(first, str) and _DELIVERY_ID.fullmatch(first):
        return int(first)
    return None


def _time(text: str) -> datetime:
    if not text:
        raise ValidationError("the SES notification has no timestamp")
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        message = f"the SES notification's time {text[:40]!r} is not ISO 8601"
        raise ValidationError(message) from None
    if value.tzinfo is None:
        raise ValidationError("the SES notification's time has no time zone")
    return value


def _event_id(*parts: str) -> str:
    joined = ":".join(parts)
    if len(joined) <= MAX_EVENT_ID_LENGTH:
        return joined
    return "sha256:" + hashlib.sha256(joined.encode("utf-8", "surrogatepass")).hexdigest()
