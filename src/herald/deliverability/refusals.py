"""An SMTP server's refusal of a message, heard by the worker as it sends: an event at once.

The worker fails a message the relay refuses with a 5xx for good; the composition root
plugs :meth:`RefusalRecorder.record` in as the worker's ``on_refused`` hook, which turns
each refusal into a :class:`~herald.deliverability.domain.ProviderEvent` (provider
``smtp``, event id ``smtp:<delivery id>:<attempt>``: a rescued or repeated report of
the same attempt is a replay) of the kind :mod:`~herald.deliverability.smtp_status`
reads in the reply — a hard bounce suppresses the address, a block never does — and
records them through the one :class:`~herald.deliverability.service.EventRecorder`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from herald.core.errors import Unavailable
from herald.core.telemetry import get_logger
from herald.deliverability.domain import Provider, ProviderEvent, without_addresses
from herald.deliverability.service import EventRecorder
from herald.deliverability.smtp_status import Status, kind_of
from herald.email.message import PermanentFailure, SmtpReply

log = get_logger("herald.deliverability")

# Short database outages are waited out (the refusals are heard once: the row is failed
# and never sent again); past this, they are logged and dropped.
RETRY_SECONDS = 10.0


class RefusedRow(Protocol):
    """What the worker knows of a refused delivery (``delivery.domain.ClaimedDelivery``)."""

    @property
    def id(self) -> int: ...
    @property
    def attempts(self) -> int: ...
    @property
    def recipient(self) -> str: ...


def refusal_event(
    delivery_id: int, attempt: int, recipient: str, reply: SmtpReply, at: datetime
) -> ProviderEvent | None:
    """The event one refusal reports, or None when it reports nothing (not a 5xx)."""
    kind = kind_of(Status.parse(reply.text), reply.code, reply.text, stage=reply.command)
    if kind is None:
        return None
    return ProviderEvent(
        provider=Provider.SMTP,
        event_id=f"smtp:{delivery_id}:{attempt}",
        kind=kind,
        occurred_at=at,
        recipient=recipient,
        delivery_id=delivery_id,
        detail=without_addresses(f"{reply.command}: {reply.code} {reply.text}"),
    )


class RefusalRecorder:
    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder

    async def record(self, refused: Sequence[tuple[RefusedRow, PermanentFailure]]) -> None:
        """The worker's ``on_refused`` hook: record the events of ``refused``."""
        now = datetime.now(UTC)
        events = [
            event
            for row, failure in refused
            if failure.refusal is not None
            and (event := refusal_event(row.id, row.attempts, row.recipient, failure.refusal, now))
        ]
        if not events:
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RETRY_SECONDS
        delay = 0.2
        while True:
            try:
                await self._recorder.record(events)
            except Unavailable:
                if loop.time() + delay > deadline:
                    raise
                log.info("database unavailable while recording refusals; retrying", delay=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            else:
                return
