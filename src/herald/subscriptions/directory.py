"""The admin's subscriber pages: the list (status tabs with counts, search, keyset pages),
one subscriber's timeline, and the actions on one subscriber or many (the actions
themselves, and the background job for "everyone matching", are in :mod:`.bulk`).

Counts come from ``subscriber_counts``, kept by triggers in the transaction of every
change (migration 0009), never from ``count(*)``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import takewhile

from herald.core import live
from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import NotFound, ValidationError
from herald.core.telemetry import get_logger
from herald.jobs import repository as job_repository
from herald.jobs.domain import Job
from herald.jobs.runner import run_now
from herald.subscriptions import bulk, repository
from herald.subscriptions.bulk import Action, ActionResult
from herald.subscriptions.domain import SubscriberName, SubscriptionStatus
from herald.subscriptions.listing import (
    Cursor,
    ListFilter,
    Sort,
    Timeline,
    TimelineEvent,
    Window,
    merge_timeline,
)

log = get_logger("herald.subscriptions")

PAGE_SIZE = 50
TIMELINE_PAGE = 100
# What providers reported (bounces, complaints, deliveries) shown in one page's window.
REPORTS_PER_PAGE = 200
_END_OF_TIME = datetime.max.replace(tzinfo=UTC)
_START_OF_TIME = datetime.min.replace(tzinfo=UTC)
MAX_SELECTED = 500
RECENT_JOBS = 5


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

    async def find(
        self, where: ListFilter, *, after: Cursor | None, limit: int, window: Window | None = None
    ) -> tuple[list[repository.SubscriptionView], bool]:
        """Up to ``limit`` subscribers matching ``where`` after ``after`` (or from the
        start) in its order, signed up within ``window``; and whether more follow (the
        JSON API's list: any page size, no counts)."""
        window = window or Window()
        start = window.start(after or Cursor.start(where.sort), where.sort)
        async with self.db.transaction() as conn:
            rows = await repository.list_page(conn, where, start, limit + 1)
        kept = list(takewhile(lambda row: window.admits(row.created_at), rows))
        return kept[:limit], len(kept) > limit

    async def rename(
        self, subscriber_id: uuid.UUID, name: SubscriberName
    ) -> repository.SubscriptionView:
        async with self.db.connection() as conn:
            found = await repository.rename(conn, subscriber_id, name.value)
        if found is None:
            raise NotFound("no such subscriber")
        return found

    async def unsubscribe(self, subscriber_id: uuid.UUID) -> repository.SubscriptionView:
        """Unsubscribe one subscriber (idempotent), as the admin's action does; the
        subscriber as they now are."""
        await self.act(Action.UNSUBSCRIBE, [subscriber_id])
        return await self.subscriber(subscriber_id)

    async def erase(self, subscriber_id: uuid.UUID, *, source: str = "admin") -> None:
        """Erase one subscriber, as the admin's delete does: gone, their address an
        ``erased`` suppression (never mailed or imported again; ``source``: who erased
        it), their queued emails suppressed, their delivery history without their address."""
        result = await self.act(Action.DELETE, [subscriber_id], source=source)
        if not result.done:
            raise NotFound("no such subscriber")

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
        """The subscriber and one page of their timeline, newest first: milestones, up to
        :data:`TIMELINE_PAGE` deliveries (each with its outcome), and what providers
        reported about the emails in that page's span of time."""
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
            reports = await repository.reports_of(
                conn,
                subscriber_id,
                older_than=start.created_at if start else _END_OF_TIME,
                newer_than=rows[-1][1].at if more else _START_OF_TIME,
                limit=REPORTS_PER_PAGE,
            )
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
            [*(event for _, event in rows), *reports],
            newer_than=rows[-1][1].at if more else None,
            older_than=start.created_at if start else None,
        )
        older = Cursor(rows[-1][1].at, rows[-1][0]) if more else None
        return view, Timeline(events, older)

    # -- actions --------------------------------------------------------------------

    async def act(
        self, action: Action, ids: list[uuid.UUID], *, source: str = "admin"
    ) -> ActionResult:
        """``action`` on the subscribers ``ids`` (at most :data:`MAX_SELECTED`), at once."""
        unique = list(dict.fromkeys(ids))
        if not unique:
            raise ValidationError("select at least one subscriber", field="id")
        if len(unique) > MAX_SELECTED:
            raise ValidationError(f"select at most {MAX_SELECTED} subscribers", field="id")
        async with self.db.transaction() as conn:
            done = await bulk.apply(conn, self.settings, action, unique, source=source)
        await self._announce(action, unique if len(unique) == 1 else [], done)
        return ActionResult(action, done, len(unique) - done)

    async def act_on_filter(
        self,
        action: Action,
        where: ListFilter,
        *,
        budget_seconds: float | None,
        by: uuid.UUID | None = None,
    ) -> Job:
        """Start ``action`` on everyone matching ``where`` as a background job and run it
        here for up to ``budget_seconds`` (None: to the end); the job as it stands then
        (finished, or left to the workers with its progress so far)."""
        total = None
        if not where.query:
            counts = await self.counts()
            status = where.tab.status
            total = counts[status] if status else sum(counts.values())
        async with self.db.transaction() as conn:
            job = await job_repository.insert(
                conn,
                kind=bulk.KIND,
                params=bulk.job_params(action, where),
                description=bulk.describe(action, where),
                total=total,
                created_by=by,
            )
        budget = float("inf") if budget_seconds is None else budget_seconds
        job = await run_now(
            self.db,
            job,
            bulk.BulkActionJob(self.settings),
            budget_seconds=budget,
            lease_seconds=self.settings.delivery.lease_seconds,
        )
        # Dashboards follow the job's own live events (job.progress, job.finished), sent by
        # whichever process runs it, here or in a worker.
        log.info("bulk subscriber action", action=action.value, status=job.status.value)
        return job

    async def jobs(self) -> list[Job]:
        """The bulk actions running, waiting, or finished in the last day (newest first)."""
        async with self.db.connection() as conn:
            return await job_repository.recent(conn, bulk.KIND, RECENT_JOBS)

    async def cancel_job(self, job_id: uuid.UUID) -> Job:
        """Stop a bulk action; what it already did stays done."""
        async with self.db.transaction() as conn:
            job = await job_repository.get(conn, job_id)
            if job is None or job.kind != bulk.KIND:
                raise NotFound("no such bulk action")
            stopped = await job_repository.cancel(
                conn, job_id, f"Stopped: {job.done:,} done before it was stopped."
            )
        if stopped is None:
            raise ValidationError("this bulk action has already finished", field="job")
        return stopped

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
