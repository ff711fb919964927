"""The delivery worker's renderer for ``welcome`` rows: the message stored at confirmation,
sent as it is — unless its reader is no longer a confirmed subscriber.

A welcome waits in the queue behind whatever was due before it (an issue's fan-out to a
whole list at the provider's rate: hours). A reader who unsubscribed meanwhile, whose
address was suppressed (a complaint, a hard bounce: the suppression unsubscribes them)
or who was erased gets no welcome: the row is recorded ``suppressed``, as an issue's is
for the same reader. The previous release's workers send it as stored (migration 0029).
"""

from __future__ import annotations

from collections.abc import Sequence

from herald.core.db import Database
from herald.delivery.domain import ClaimedDelivery, Suppressed, render_stored
from herald.email.message import EmailMessage, PermanentFailure
from herald.welcomes import repository


class WelcomeDeliveries:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def render(
        self, batch: Sequence[ClaimedDelivery]
    ) -> list[EmailMessage | PermanentFailure | Suppressed]:
        readers = [d.subscriber_id for d in batch if d.subscriber_id is not None]
        async with self._db.connection() as conn:
            confirmed = await repository.confirmed_readers(conn, readers)
        return [
            render_stored(d)
            if d.subscriber_id in confirmed
            else Suppressed("the subscriber is no longer confirmed")
            for d in batch
        ]
