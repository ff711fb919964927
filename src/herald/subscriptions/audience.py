"""The dashboard's audience figures: subscribers by status, the audience's growth and the
sign-ups, confirmations and unsubscribes of each day over a period, and the delivery
queue's state.

Nothing here counts ``subscriptions`` rows: the status counts come from
``subscriber_counts`` (0009) and the days from ``subscriber_daily`` (0011), both kept by
triggers, so a view costs the same at a thousand subscribers or ten million. Days are
UTC dates. The audience on a past day is today's count minus the net changes recorded
since (:func:`build_days`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import ValidationError
from herald.delivery import repository as deliveries
from herald.subscriptions import repository
from herald.subscriptions.domain import SubscriptionStatus
from herald.subscriptions.repository import DailyFigures

PERIODS = (30, 90, 365)
QUEUE_COUNT_CAP = 100_000  # the queue tile says "100,000+" beyond
DEFAULT_PERIOD = PERIODS[0]


def parse_period(raw: str | None) -> int:
    """``?days=`` of the dashboard: one of :data:`PERIODS` (a 400 for anything else)."""
    if raw is None or raw == "":
        return DEFAULT_PERIOD
    if raw.isdigit() and int(raw) in PERIODS:
        return int(raw)
    raise ValidationError(f"days must be one of {', '.join(map(str, PERIODS))}.")


@dataclass(frozen=True, slots=True)
class Day:
    """One UTC day: what happened, and the audience at its end."""

    day: date
    subscribed: int
    confirmed: int
    unsubscribed: int
    deleted: int
    confirmed_total: int
    pending_total: int


@dataclass(frozen=True, slots=True)
class QueueState:
    queued: int
    sending: int
    oldest_ready_seconds: float

    @property
    def capped(self) -> bool:
        """The counts stopped at :data:`QUEUE_COUNT_CAP`: there are at least that many."""
        return self.queued + self.sending >= QUEUE_COUNT_CAP


@dataclass(frozen=True, slots=True)
class Audience:
    period: int
    counts: dict[SubscriptionStatus, int]
    days: list[Day]  # every day of the period, oldest first, the last one today
    before: tuple[int, int]  # (confirmed, pending) at the end of the day before the period
    queue: QueueState

    def total(self, field: str) -> int:
        """The period's sum of a per-day figure (``subscribed``, ``confirmed``, …)."""
        return sum(int(getattr(day, field)) for day in self.days)

    @property
    def confirmed_growth(self) -> int:
        return self.counts[SubscriptionStatus.CONFIRMED] - self.before[0]

    def as_json(self) -> dict[str, object]:
        return {
            "period": self.period,
            "counts": {status.value: n for status, n in self.counts.items()},
            "growth": self.confirmed_growth,
            "totals": {field: self.total(field) for field in FIELDS},
            "days": {
                "day": [d.day.isoformat() for d in self.days],
                **{field: [getattr(d, field) for d in self.days] for field in SERIES},
            },
            "queue": {
                "queued": self.queue.queued,
                "sending": self.queue.sending,
                "oldest_ready_seconds": round(self.queue.oldest_ready_seconds, 1),
                "capped": self.queue.capped,
            },
        }


FIELDS = ("subscribed", "confirmed", "unsubscribed", "deleted")
SERIES = (*FIELDS, "confirmed_total", "pending_total")


def build_days(
    today: date,
    period: int,
    recorded: list[DailyFigures],
    counts: dict[SubscriptionStatus, int],
) -> tuple[list[Day], tuple[int, int]]:
    """The period's days (zero-filled), each with the audience at its end, walking back
    from today's counts; and the audience before the period. ``recorded`` holds every
    recorded day after the period's start minus one, later days (a future
    ``created_at``) included, so that their changes are taken back too."""
    by_day = {figures.day: figures for figures in recorded}
    confirmed = counts[SubscriptionStatus.CONFIRMED]
    pending = counts[SubscriptionStatus.PENDING]
    for figures in recorded:
        if figures.day > today:
            confirmed -= figures.confirmed_net
            pending -= figures.pending_net
    days: list[Day] = []
    for back in range(period):
        day = today - timedelta(days=back)
        figures = by_day.get(day) or DailyFigures(day, 0, 0, 0, 0, 0, 0)
        days.append(
            Day(
                day,
                figures.subscribed,
                figures.confirmed,
                figures.unsubscribed,
                figures.deleted,
                max(confirmed, 0),
                max(pending, 0),
            )
        )
        confirmed -= figures.confirmed_net
        pending -= figures.pending_net
    days.reverse()
    return days, (max(confirmed, 0), max(pending, 0))


@dataclass(frozen=True)
class AudienceStats:
    db: Database
    settings: Settings

    async def audience(self, period: int, *, now: datetime | None = None) -> Audience:
        """The dashboard's figures for the last ``period`` UTC days (today included)."""
        today = (now or datetime.now(UTC)).astimezone(UTC).date()
        async with self.db.transaction() as conn:
            counts = await repository.status_counts(conn)
            recorded = await repository.daily_figures(conn, today - timedelta(days=period))
            pending = await deliveries.pending_counts_capped(conn, QUEUE_COUNT_CAP)
            oldest = await deliveries.oldest_ready_age(conn)
        days, before = build_days(today, period, recorded, counts)
        queue = QueueState(pending.get("queued", 0), pending.get("sending", 0), oldest)
        return Audience(period, counts, days, before, queue)
