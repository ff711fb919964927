"""Where an issue's send is: its deliveries by status, what is done, the rate and the time
left (the issue pages, the progress stream, the API's stats). No I/O."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from herald.delivery.domain import DeliveryStatus
from herald.issues.domain import IssueStatus

STATUSES = tuple(DeliveryStatus)


@dataclass(frozen=True, slots=True)
class Progress:
    issue_id: uuid.UUID
    status: IssueStatus
    recipients: int
    counts: dict[DeliveryStatus, int]
    fanning_out: bool = False
    fanout_error: str | None = None
    rate_per_min: float | None = None  # finished deliveries a minute, lately (None: unknown)

    @property
    def done(self) -> int:
        return sum(self.counts.get(s, 0) for s in STATUSES if s.finished)

    @property
    def percent(self) -> float:
        if self.status not in (IssueStatus.PUBLISHING, IssueStatus.SENT):
            return 0.0
        if not self.recipients:
            return 0.0 if self.fanning_out else 100.0
        return 100.0 * self.done / self.recipients

    @property
    def eta_seconds(self) -> int | None:
        """Time to finish at the current rate; None while recipients are still being queued
        (their number is not known yet), without a rate, or when there is nothing left."""
        left = self.recipients - self.done
        if self.status is not IssueStatus.PUBLISHING or self.fanning_out or left <= 0:
            return None
        if not self.rate_per_min:
            return None
        return round(60 * left / self.rate_per_min)

    def as_json(self) -> dict[str, object]:
        return {
            "issue_id": str(self.issue_id),
            "status": self.status.value,
            "recipients": self.recipients,
            "percent": round(self.percent, 1),
            "fanning_out": self.fanning_out,
            "fanout_error": self.fanout_error,
            "rate_per_min": None if self.rate_per_min is None else round(self.rate_per_min, 1),
            "eta_seconds": self.eta_seconds,
            **{s.value: self.counts.get(s, 0) for s in STATUSES},
        }
