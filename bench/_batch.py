"""One claimed batch of an issue's deliveries, as the worker hands it to
``IssueDeliveries._render_batch``: the CPU benchmarks (``render_cost.py``, ``dkim_cost.py``)
render it in process, with no database."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from herald.core.config import Settings
from herald.delivery.domain import ClaimedDelivery
from herald.issues import repository
from herald.issues.delivery import IssueDeliveries
from herald.subscriptions.domain import SubscriptionStatus


class _NoDatabase:  # never used: the batch's rows are handed to the render directly
    pass


@dataclass(frozen=True)
class IssueBatch:
    deliveries: IssueDeliveries
    batch: list[ClaimedDelivery]
    recipients: dict[uuid.UUID, repository.Recipient]


def issue_batch(settings: Settings, issue_id: uuid.UUID, size: int) -> IssueBatch:
    """``size`` confirmed readers' deliveries of ``issue_id``, each a first attempt."""
    readers = [uuid.uuid4() for _ in range(size)]
    recipients = {
        reader: repository.Recipient(
            reader, f"reader{n}@example.com", f"Reader {n}", SubscriptionStatus.CONFIRMED
        )
        for n, reader in enumerate(readers)
    }
    batch = [
        ClaimedDelivery(
            id=n,
            kind="issue",
            recipient=f"reader{n}@example.com",
            subscriber_id=reader,
            message=None,
            attempts=1,
            max_attempts=5,
            issue_id=issue_id,
        )
        for n, reader in enumerate(readers)
    ]
    deliveries = IssueDeliveries(db=_NoDatabase(), settings=settings)  # type: ignore[arg-type]
    return IssueBatch(deliveries, batch, recipients)
