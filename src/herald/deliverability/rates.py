"""An issue's feedback from the providers as rates, and the warnings they call for. Pure.

The thresholds are the ones mailbox providers publish or enforce:

* **complaints**: Gmail's and Yahoo's bulk-sender rules (February 2024) ask senders to keep
  the spam rate below 0.1 % and never to reach 0.3 % (Postmaster Tools' "spam rate").
* **hard bounces**: no mailbox provider publishes a number; the common ESP guidance is to
  stay under 2 % (a list that needs cleaning), and Postmark and SES review accounts whose
  bounce rate passes 5 % and 10 %. Herald warns at 2 % and alerts at 5 %.

Rates are per recipient the issue was sent to: an address that bounced twice counts once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from herald.deliverability.domain import EventKind

COMPLAINT_WARN = 0.001
COMPLAINT_ALERT = 0.003
BOUNCE_WARN = 0.02
BOUNCE_ALERT = 0.05


class Level(StrEnum):
    OK = "ok"
    WARN = "warn"
    ALERT = "alert"


@dataclass(frozen=True, slots=True)
class Notice:
    level: Level
    text: str


@dataclass(frozen=True, slots=True)
class Feedback:
    """What the providers reported for one issue: recipients per event kind, over the
    ``sent`` recipients (None while unknown: the rates are then None too)."""

    counts: dict[EventKind, int] = field(default_factory=dict)
    sent: int | None = None

    def count(self, kind: EventKind | str) -> int:
        return self.counts.get(EventKind(kind), 0)

    def rate(self, kind: EventKind | str) -> float | None:
        if not self.sent:
            return None
        return self.count(kind) / self.sent

    def percent_of(self, kind: EventKind | str) -> str:
        """The rate of ``kind`` as people read it (for the pages)."""
        return percent(self.rate(kind))

    @property
    def bounce_rate(self) -> float | None:
        return self.rate(EventKind.HARD_BOUNCE)

    @property
    def complaint_rate(self) -> float | None:
        return self.rate(EventKind.COMPLAINT)

    @property
    def bounce_level(self) -> Level:
        return _level(self.bounce_rate, BOUNCE_WARN, BOUNCE_ALERT)

    @property
    def complaint_level(self) -> Level:
        return _level(self.complaint_rate, COMPLAINT_WARN, COMPLAINT_ALERT)

    @property
    def any(self) -> bool:
        return any(self.counts.values())

    def warnings(self) -> list[Notice]:
        """What an operator should know, worst first."""
        out: list[Notice] = []
        complaints, bounces = self.complaint_rate, self.bounce_rate
        if complaints is not None and self.complaint_level is Level.ALERT:
            out.append(
                Notice(
                    Level.ALERT,
                    f"Spam complaints reached {percent(complaints)} of recipients: Gmail and "
                    "Yahoo start rejecting or filtering a sender at 0.3 %. Check that every "
                    "reader asked for this newsletter, and make unsubscribing easy.",
                )
            )
        elif complaints is not None and self.complaint_level is Level.WARN:
            out.append(
                Notice(
                    Level.WARN,
                    f"Spam complaints are at {percent(complaints)} of recipients: Gmail asks "
                    "bulk senders to stay below 0.1 % and never reach 0.3 %.",
                )
            )
        if bounces is not None and self.bounce_level is not Level.OK:
            out.append(
                Notice(
                    self.bounce_level,
                    f"Hard bounces reached {percent(bounces)} of recipients (above "
                    f"{percent(BOUNCE_WARN if self.bounce_level is Level.WARN else BOUNCE_ALERT)}"
                    "): the list holds addresses that no longer exist. They are suppressed "
                    "now; an imported list that was not confirmed recently is the usual cause.",
                )
            )
        blocked = self.count(EventKind.BLOCKED)
        if blocked:
            out.append(
                Notice(
                    Level.ALERT,
                    f"{blocked:,} {'message was' if blocked == 1 else 'messages were'} "
                    "blocked by the receiving servers because of the sender (reputation, "
                    "authentication or content), not the readers: check SPF, DKIM and DMARC "
                    "in the settings.",
                )
            )
        return out


def _level(rate: float | None, warn: float, alert: float) -> Level:
    if rate is None or rate < warn:
        return Level.OK
    return Level.ALERT if rate >= alert else Level.WARN


def percent(rate: float | None) -> str:
    """A rate as people read it: 0.31 %, 2.4 %, 12 %."""
    if rate is None:
        return "—"
    value = rate * 100
    if value == 0:
        return "0 %"
    if value < 1:
        return f"{value:.2f} %"
    if value < 10:
        return f"{value:.1f} %"
    return f"{value:.0f} %"
