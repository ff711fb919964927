"""Pure delivery rules: what a claimed row is, and what to do after a send attempt."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from uuid import UUID

from herald.email.message import (
    Accepted,
    EmailMessage,
    PermanentFailure,
    SendResult,
    TransientFailure,
)


class DeliveryStatus(StrEnum):
    """Where a ``deliveries`` row is (the table's CHECK constraint lists the same values)."""

    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"

    @property
    def finished(self) -> bool:
        """Nothing more will happen to the row (unless an editor retries a failed one)."""
        return self in {DeliveryStatus.SENT, DeliveryStatus.FAILED, DeliveryStatus.SUPPRESSED}


class DeliveryKind(StrEnum):
    """What a delivery is. The worker renders a kind with the renderer a feature plugged
    in for it (issues: :attr:`ISSUE`); the others carry the message rendered at enqueue."""

    CONFIRMATION = "confirmation"
    ISSUE = "issue"
    TEST = "test"
    WELCOME = "welcome"  # a list's welcome email (migration 0029), rendered at enqueue


@dataclass(frozen=True, slots=True)
class ClaimedDelivery:
    id: int
    kind: str  # as stored: a DeliveryKind, or a kind this version does not know (sent as stored)
    recipient: str
    subscriber_id: UUID | None
    message: dict[str, Any] | None
    attempts: int  # including the attempt this claim is for
    max_attempts: int
    issue_id: UUID | None = None
    rescued: bool = False  # its previous claim's lease had run out
    traceparent: str | None = None  # where its trace starts (read only while tracing is on)

    @classmethod
    def from_row(cls, row: Any) -> ClaimedDelivery:
        raw = row["message"]
        return cls(
            id=row["id"],
            kind=row["kind"],
            recipient=row["recipient"],
            subscriber_id=row["subscriber_id"],
            issue_id=row["issue_id"],
            message=json.loads(raw) if raw is not None else None,
            attempts=row["attempts"],
            max_attempts=row["max_attempts"],
            rescued=bool(row.get("rescued", False)),
            traceparent=row.get("traceparent"),
        )


def backoff_seconds(
    attempt: int,
    *,
    base: float,
    cap: float,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Delay before the next attempt after ``attempt`` failed (1-based).

    Exponential (base, 2·base, 4·base, … capped) with "equal jitter": a uniform
    draw in [delay/2, delay], so retries of a provider outage spread out instead
    of arriving in lockstep.

    A provider's own ``Retry-After`` is honoured (never sooner, at most 10 % later)
    but may shorten the ladder by one rung only: after attempt ``n`` the delay is
    at least the exponential delay of attempt ``n - 1``. So the first rate-limited
    retry comes when the provider asks, and a provider that keeps answering
    ``429 Retry-After: 1`` is backed off from exponentially. Taken as the whole
    delay, such a storm retried every message about once a second and burnt its
    eight attempts within seconds, failing mail over a one-minute outage
    (``bench/storm.py``, R3 in BENCHMARKS.md).
    """
    draw = (rng or random).uniform
    if retry_after is not None and retry_after > 0:
        floor = _exponential(attempt - 1, base, cap, draw) if attempt > 1 else 0.0
        return min(cap, max(floor, retry_after * draw(1.0, 1.1)))
    return _exponential(attempt, base, cap, draw)


def _exponential(
    attempt: int, base: float, cap: float, draw: Callable[[float, float], float]
) -> float:
    delay = min(cap, base * (2 ** max(0, attempt - 1)))
    return draw(delay / 2, delay)


@dataclass(frozen=True, slots=True)
class Suppressed:
    """Deliberately not sent (e.g. the subscriber unsubscribed after the issue was queued)."""

    reason: str


@dataclass(slots=True)
class Outcomes:
    """What a processed batch turns into: four fenced UPDATEs."""

    sent: list[tuple[int, str | None]] = field(default_factory=list)
    retry: list[tuple[int, float, str]] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)
    suppressed: list[tuple[int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.sent) + len(self.retry) + len(self.failed) + len(self.suppressed)


def decide(
    deliveries: Sequence[ClaimedDelivery],
    results: Sequence[SendResult | Suppressed],
    *,
    retry_base: float,
    retry_cap: float,
    rng: random.Random | None = None,
) -> Outcomes:
    """Map each send result to sent / retry later / failed."""
    if len(deliveries) != len(results):
        raise ValueError("one result per delivery is required")
    outcomes = Outcomes()
    for delivery, result in zip(deliveries, results, strict=True):
        if isinstance(result, Accepted):
            outcomes.sent.append((delivery.id, result.message_id))
        elif isinstance(result, Suppressed):
            outcomes.suppressed.append((delivery.id, _clip(result.reason)))
        elif isinstance(result, PermanentFailure):
            outcomes.failed.append((delivery.id, _clip(result.error)))
        elif isinstance(result, TransientFailure):
            if delivery.attempts >= delivery.max_attempts:
                error = f"gave up after {delivery.attempts} attempts: {result.error}"
                outcomes.failed.append((delivery.id, _clip(error)))
            else:
                delay = backoff_seconds(
                    delivery.attempts,
                    base=retry_base,
                    cap=retry_cap,
                    retry_after=result.retry_after,
                    rng=rng,
                )
                outcomes.retry.append((delivery.id, delay, _clip(result.error)))
    return outcomes


def render_stored(delivery: ClaimedDelivery) -> EmailMessage | PermanentFailure:
    """Kinds whose message was rendered at enqueue time (confirmations, tests)."""
    if delivery.message is None:
        return PermanentFailure(f"delivery {delivery.id} of kind {delivery.kind!r} has no message")
    try:
        return EmailMessage.from_json(delivery.message)
    except (KeyError, TypeError, ValueError) as exc:
        return PermanentFailure(f"stored message is malformed: {exc!r}")


def _clip(text: str, limit: int = 2000) -> str:
    return text if len(text) <= limit else text[:limit] + "…"
