"""The admin's subscriber pages: the list (status tabs with counts, search, keyset pages),
one subscriber's timeline, and the actions on one subscriber or many.

Counts come from ``subscriber_counts``, kept by triggers in the transaction of every
change (migration 0009), never from ``count(*)``. An action over "everyone matching
the filter" walks the filter's keyset order in batches of :data:`BATCH_SIZE`, one
transaction each, so it holds no lock for long and a crash leaves whole batches done.
Subscribers who arrive while it runs (newer than where it started) are left alone.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum

from herald.core import live
from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import NotFound, ValidationError
from herald.core.telemetry import get_logger
from herald.delivery import repository as deliveries
from herald.delivery.domain import DeliveryKind
from herald.subscriptions import repository
from herald.subscriptions.domain import (
    NewSubscriber,
    SubscriberEmail,
    SubscriberName,
    SubscriptionStatus,
    hash_token,
    new_confirmation_token,
)
from herald.subscriptions.emails import confirmation_email
from herald.subscriptions.listing import (
    Cursor,
    ListFilter,
    Sort,
    Timeline,
    TimelineEvent,
    merge_timeline,
)

log = get_logger("herald.subscriptions")

PAGE_SIZE = 50
TIMELINE_PAGE = 100
BATCH_SIZE = 1000
MAX_SELECTED = 500
DAY_SECONDS = 24 * 3600.0


class Action(StrEnum):
    RESEND = "resend"
    UNSUBSCRIBE = "unsubscribe"
    DELETE = "delete"

    @classmethod
    def parse(cls, raw: str) -> Action:
        try:
            return cls(raw)
        except ValueError:
            raise ValidationError(
                "choose an action: resend, unsubscribe or delete", field="action"
            ) from None


@dataclass(frozen=True, slots=True)
class SubscriberList:
    where: ListFilter
    subscribers: list[repository.SubscriptionView]
    counts: dict[SubscriptionStatus, int]
    # Cursors of the neighbouring pages; None where there is none.
    newer: Cursor | None
    older: Cursor | None

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True)
class ActionResult:
    action: Action
    done: int
    skipped: int

    def message(self) -> str:
        who = "subscriber" if self.done == 1 else "subscribers"
        text = {
            Action.RESEND: f"Confirmation email sent to {self.done:,} {who}.",
            Action.UNSUBSCRIBE: f"{self.done:,} {who} unsubscribed.",
            Action.DELETE: f"{self.done:,} {who} deleted.",
        }[self.action]
        if self.skipped:
            why = {
                Action.RESEND: "not pending, or at today's limit of confirmation emails",
                Action.UNSUBSCRIBE: "already unsubscribed",
                Action.DELETE: "already gone",
            }[self.action]
            text += f" {self.skipped:,} skipped ({why})."
        return text


def _cursor(view: repository.SubscriptionView) -> Cursor:
    return Cursor(view.created_at, view.id)


@dataclass(frozen=True)
class SubscriberDirectory:
    db: Database
    settings: Settings

    async def page(self, where: ListFilter, *, after: str = "", before: str = "") -> SubscriberList:
        """One page of :data:`PAGE_SIZE`: after ``after`` (or the start), or the page just
        before ``before`` (the "newer" link)."""
        backwards = bool(before) and not after
        cursor = Cursor.parse(before if backwards else after) if (after or before) else None
        async with self.db.transaction() as conn:
            rows = await repository.list_page(
                conn,
                where,
                cursor or Cursor.start(where.sort),
                PAGE_SIZE + 1,
                forward=not backwards,
            )
            counts = await repository.status_counts(conn)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        if backwards:
            rows.reverse()
            newer = _cursor(rows[0]) if more and rows else None
            older = _cursor(rows[-1]) if rows else cursor
        else:
            newer = _cursor(rows[0]) if cursor is not None and rows else None
            older = _cursor(rows[-1]) if more else None
        return SubscriberList(where, rows, counts, newer, older)

    async def counts(self) -> dict[SubscriptionStatus, int]:
        async with self.db.connection() as conn:
            return await repository.status_counts(conn)

    async def subscriber(self, subscriber_id: uuid.UUID) -> repository.SubscriptionView:
        async with self.db.connection() as conn:
            found = await repository.get_by_id(conn, subscriber_id)
        if found is None:
            raise NotFound("no such subscriber")
        return found

    async def timeline(
        self, subscriber_id: uuid.UUID, before: str = ""
    ) -> tuple[repository.SubscriptionView, Timeline]:
        """The subscriber and one page of their timeline, newest first: milestones and
        up to :data:`TIMELINE_PAGE` deliveries (each with its outcome)."""
        start = Cursor.parse(before, integer_id=True) if before else None
        async with self.db.connection() as conn:
            found = await repository.get_for_timeline(conn, subscriber_id)
            if found is None:
                raise NotFound("no such subscriber")
            rows = await repository.deliveries_of(
                conn,
                subscriber_id,
                start or Cursor.start(Sort.NEWEST, integer_id=True),
                TIMELINE_PAGE + 1,
            )
        more = len(rows) > TIMELINE_PAGE
        rows = rows[:TIMELINE_PAGE]
        view = found.view
        milestones = [TimelineEvent(view.created_at, "subscribed")]
        if view.confirmed_at is not None:
            milestones.append(TimelineEvent(view.confirmed_at, "confirmed"))
        if found.unsubscribed_at is not None:
            milestones.append(TimelineEvent(found.unsubscribed_at, "unsubscribed"))
        elif view.status is SubscriptionStatus.UNSUBSCRIBED:
            # Unsubscribed by a release that did not record when: its last change.
            milestones.append(TimelineEvent(found.updated_at, "unsubscribed"))
        events = merge_timeline(
            milestones,
            [event for _, event in rows],
            newer_than=rows[-1][1].at if more else None,
            older_than=start.created_at if start else None,
        )
        older = Cursor(rows[-1][1].at, rows[-1][0]) if more else None
        return view, Timeline(events, older)

    # -- actions --------------------------------------------------------------------

    async def act(self, action: Action, ids: list[uuid.UUID]) -> ActionResult:
        """``action`` on the subscribers ``ids`` (at most :data:`MAX_SELECTED`)."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            raise ValidationError("select at least one subscriber", field="id")
        if len(unique) > MAX_SELECTED:
            raise ValidationError(f"select at most {MAX_SELECTED} subscribers", field="id")
        done = await self._batch(action, unique)
        await self._announce(action, unique if len(unique) == 1 else [], done)
        return ActionResult(action, done, len(unique) - done)

    async def act_on_filter(self, action: Action, where: ListFilter) -> ActionResult:
        """``action`` on everyone matching ``where`` when it starts, batch by batch."""
        cursor = Cursor.start(where.sort)
        done = seen = 0
        while True:
            async with self.db.transaction() as conn:
                rows = await repository.list_page(conn, where, cursor, BATCH_SIZE)
            if not rows:
                break
            seen += len(rows)
            done += await self._batch(action, [r.id for r in rows])
            cursor = _cursor(rows[-1])
            if len(rows) < BATCH_SIZE:
                break
        await self._announce(action, [], done)
        log.info("bulk subscriber action", action=action.value, done=done, matched=seen)
        return ActionResult(action, done, seen - done)

    async def _batch(self, action: Action, ids: list[uuid.UUID]) -> int:
        if action is Action.RESEND:
            return await self._resend(ids)
        async with self.db.transaction() as conn:
            if action is Action.UNSUBSCRIBE:
                return await repository.unsubscribe_many(conn, ids)
            return await repository.delete_many(conn, ids)

    async def _resend(self, ids: list[uuid.UUID]) -> int:
        """A fresh token and confirmation email for each pending subscriber among ``ids``
        under today's limit (``HERALD_SUBSCRIPTIONS__MAX_CONFIRMATIONS_PER_DAY``)."""
        limits = self.settings.subscriptions
        ttl_seconds = limits.token_ttl_hours * 3600
        async with self.db.transaction() as conn:
            pending = await repository.lock_resendable(
                conn, ids, window_seconds=DAY_SECONDS, per_window=limits.max_confirmations_per_day
            )
            for subscriber in pending:
                token = new_confirmation_token()
                new = NewSubscriber(
                    SubscriberEmail(subscriber.email), SubscriberName(subscriber.name)
                )
                message = confirmation_email(
                    new,
                    token=token,
                    base_url=self.settings.public_base_url,
                    sender=self.settings.sender,
                    ttl_hours=limits.token_ttl_hours,
                )
                await repository.insert_token(conn, hash_token(token), subscriber.id, ttl_seconds)
                await deliveries.enqueue(
                    conn,
                    kind=DeliveryKind.CONFIRMATION,
                    message=message,
                    max_attempts=self.settings.delivery.max_attempts,
                    subscriber_id=subscriber.id,
                )
        return len(pending)

    async def _announce(self, action: Action, one: list[uuid.UUID], done: int) -> None:
        """Tell the live dashboards: one event for one subscriber, a summary for many."""
        if not done or action is Action.RESEND:
            return
        if one:
            gone = action is Action.UNSUBSCRIBE
            kind = "subscriber.unsubscribed" if gone else "subscriber.deleted"
            payload = live.event(kind, subscriber_id=one[0])
        else:
            payload = live.event("subscribers.changed", action=action.value, count=done)
        async with self.db.connection() as conn:
            await live.notify(conn, payload)
