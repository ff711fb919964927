"""Bounce messages the MTA hands over (``herald bounces ingest``): one event each.

A bounce is trusted only through the address it came to: the signed VERP return path
of one delivery (:mod:`herald.email.verp`). What the bounce itself names — its final
recipient, its headers — anyone can write, so it never decides *which* address is
suppressed: the event carries the delivery and no recipient, and the recorder takes the
address from the delivery. A bounce to a forged or altered return path, to no return
path of Herald's, or that cannot be read is ignored (and said so): the MTA must not
keep offering it. The event id is derived from the bounce's Message-ID (else its bytes),
so the same bounce delivered twice is a replay.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from herald.core.errors import ValidationError
from herald.deliverability.domain import EventKind, Provider, ProviderEvent
from herald.deliverability.dsn import Bounce, parse_bounce
from herald.deliverability.service import EventRecorder
from herald.email.verp import Verp

# A bounce's own date is believed within this much of now (clocks differ; a report is
# written before it is delivered); otherwise the time it arrives stands in.
_DATE_SLACK = timedelta(days=7)


class Outcome(StrEnum):
    RECORDED = "recorded"
    REPLAY = "replay"  # the same bounce was recorded before
    IGNORED = "ignored"  # not usable: said why


@dataclass(frozen=True, slots=True)
class Ingested:
    outcome: Outcome
    reason: str = ""
    delivery_id: int | None = None
    kind: EventKind | None = None
    suppressed: bool = False


class BounceReader:
    """Reads a bounce and checks its return path: no database needed, so what cannot be
    used is known (and dropped) even while the database is down."""

    def __init__(self, verp: Verp) -> None:
        self._verp = verp

    def read(self, raw: bytes, *, recipients: Sequence[str] = ()) -> ProviderEvent | Ingested:
        """The event ``raw`` reports, or why it is ignored. ``recipients``: where the MTA
        says it delivered the message (the pipe's recipient), believed before the headers."""
        try:
            bounce = parse_bounce(raw)
        except ValidationError as exc:
            return Ingested(Outcome.IGNORED, exc.message)
        delivery_id, why = self._delivery(bounce, recipients)
        if delivery_id is None:
            return Ingested(Outcome.IGNORED, why)
        report = bounce.report
        kind = report.kind if report is not None else None
        if report is None or kind is None:
            return Ingested(Outcome.IGNORED, "the report says nothing Herald records", delivery_id)
        identity = bounce.message_id.encode() or raw
        return ProviderEvent(
            provider=Provider.SMTP,
            event_id=f"dsn:{delivery_id}:{hashlib.sha256(identity).hexdigest()[:32]}",
            kind=kind,
            occurred_at=_when(bounce.date),
            delivery_id=delivery_id,
            detail=report.detail,
        )

    def _delivery(self, bounce: Bounce, recipients: Sequence[str]) -> tuple[int | None, str]:
        candidates = [*recipients, *bounce.addressed_to]
        for address in candidates:
            delivery_id = self._verp.delivery_of(address)
            if delivery_id is not None:
                return delivery_id, ""
        if any(self._verp.looks_like(address) for address in candidates):
            return None, "the return path's signature does not match (forged or altered)"
        return None, "not addressed to a return path of Herald's (no VERP address)"


async def record_bounce(recorder: EventRecorder, event: ProviderEvent) -> Ingested:
    """Store the event :meth:`BounceReader.read` made. ``Unavailable`` when the database
    is: the MTA should offer the bounce again later."""
    [recorded] = await recorder.record([event])
    if not recorded.stored:
        return Ingested(Outcome.REPLAY, "recorded before", event.delivery_id, event.kind)
    return Ingested(Outcome.RECORDED, "", event.delivery_id, event.kind, recorded.suppressed)


def _when(date: datetime | None) -> datetime:
    now = datetime.now(UTC)
    if date is None or abs(now - date) > _DATE_SLACK:
        return now
    return date
