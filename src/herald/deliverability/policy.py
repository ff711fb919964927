"""The deliverability policy, in one place: what an event does to the address it is about.
Pure: no web framework, no database.

* ``hard_bounce``: the address is dead; suppressed at once (reason ``hard_bounce``).
* ``complaint``: the reader marked a message as spam; suppressed at once (``complaint``).
  Mailing a complainer again is what costs a sender its reputation (Gmail's limit is
  0.3 % of messages).
* ``provider_unsubscribe``, ``provider_suppression``: the reader unsubscribed through the
  provider, or the provider will not send to the address any more; suppressed at once
  (``provider``): Herald's queue would only collect the provider's refusals.
* ``soft_bounce``: temporary (mailbox full, server down); the address is suppressed as
  ``hard_bounce`` once it soft-bounced ``limit`` times within ``window`` (by default 3 in
  30 days), counting this one: the window ends at the event's own time.
* ``blocked``: refused because of the *sender* (reputation, content, a block list): never
  suppresses the reader, raises the alert metric instead.
* ``delivered``, ``deferred``: stored, nothing else.

An event about an address Herald never mailed (no delivery, no subscription) is stored
and may still suppress: a complaint about an address is a complaint, and a hard bounce
means the address is dead whoever mailed it; the suppression then refuses a later
sign-up or import of it. An event about an address that is already suppressed for a
reason other than the reader's own ``unsubscribed`` changes nothing (``suppressed`` stays
false on it: it did not put the address on the list). A replayed event (the same
provider event id) does nothing at all.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from herald.core.config import DeliverabilitySettings
from herald.core.errors import ValidationError
from herald.deliverability.domain import EventKind
from herald.subscriptions.domain import SuppressionReason

DEFAULT_SOFT_BOUNCE_LIMIT = 3
DEFAULT_SOFT_BOUNCE_WINDOW = timedelta(days=30)

# The kinds that suppress the address at once, and as what.
_AT_ONCE: dict[EventKind, SuppressionReason] = {
    EventKind.HARD_BOUNCE: SuppressionReason.HARD_BOUNCE,
    EventKind.COMPLAINT: SuppressionReason.COMPLAINT,
    EventKind.PROVIDER_UNSUBSCRIBE: SuppressionReason.PROVIDER,
    EventKind.PROVIDER_SUPPRESSION: SuppressionReason.PROVIDER,
}
# What soft bounces become once there are enough of them within the window.
SOFT_BOUNCE_REASON = SuppressionReason.HARD_BOUNCE


@dataclass(frozen=True, slots=True)
class Policy:
    """The configurable part: ``limit`` soft bounces within ``window`` suppress."""

    soft_bounce_limit: int = DEFAULT_SOFT_BOUNCE_LIMIT
    soft_bounce_window: timedelta = DEFAULT_SOFT_BOUNCE_WINDOW

    def __post_init__(self) -> None:
        if self.soft_bounce_limit < 1:
            raise ValidationError("the soft bounce limit must be at least 1")
        if self.soft_bounce_window <= timedelta(0):
            raise ValidationError("the soft bounce window must be longer than zero")

    @staticmethod
    def at_once(kind: EventKind) -> SuppressionReason | None:
        """The reason ``kind`` suppresses its address as at once, or None."""
        return _AT_ONCE.get(kind)

    def decide(self, kind: EventKind, soft_bounces: int = 0) -> SuppressionReason | None:
        """The reason the address is suppressed for, or None when it is not.

        ``soft_bounces``: for a soft bounce, how many soft bounces of the address fall in
        the window ending at this one's time, this one included."""
        if kind is EventKind.SOFT_BOUNCE:
            return SOFT_BOUNCE_REASON if soft_bounces >= self.soft_bounce_limit else None
        return _AT_ONCE.get(kind)

    @staticmethod
    def may_suppress(kind: EventKind) -> bool:
        """Whether an event of ``kind`` can put its address on the suppression list."""
        return kind is EventKind.SOFT_BOUNCE or kind in _AT_ONCE

    @staticmethod
    def alerts(kind: EventKind) -> bool:
        """A block is the sender's problem: it raises the alert metric, never a suppression."""
        return kind is EventKind.BLOCKED

    @staticmethod
    def source(provider: str, kind: EventKind) -> str:
        """The suppression's recorded source: who reported what (``postmark: complaint``)."""
        return f"{provider}: {kind.value.replace('_', ' ')}"


def configured(settings: DeliverabilitySettings) -> Policy:
    """The policy ``HERALD_DELIVERABILITY__SOFT_BOUNCE_LIMIT`` / ``__SOFT_BOUNCE_WINDOW_DAYS``
    describe."""
    return Policy(settings.soft_bounce_limit, timedelta(days=settings.soft_bounce_window_days))
