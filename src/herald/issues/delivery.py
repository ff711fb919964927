"""How the delivery worker sends issue deliveries.

Issue rows carry no message: each batch is rendered at send time from the issue
(compiled once per worker) and the subscriber's *current* row. That is where
suppression is re-checked: someone who unsubscribed after the issue was queued
is recorded as ``suppressed`` and not sent. Each email links to the reader's signed web
copy (:mod:`herald.issues.webcopy`: one HMAC per recipient), and its unsubscribe link names
the issue (``&issue=<id>``: the one-click endpoint unsubscribes from that issue's lists).
The readers' attributes are read only for an issue whose bodies use them
(:attr:`CompiledIssue.uses_attributes`). Issues are compiled into the
email design in force (:mod:`herald.design.current`: its version checked at most every 2 s,
before a batch); when it changes, issues compile anew, so a send in progress renders its
later batches in the new design. After each batch, finished issues
are marked ``sent`` and a progress notification goes out to web processes.

Rendering runs in a thread (the worker's event loop keeps renewing its lease
meanwhile), each recipient under the sandbox's time limit. Whatever one
recipient's render raises is that delivery's permanent failure, with the error
and template line as its ``last_error``; the rest of the batch goes out. After
:data:`TIMEOUTS_BEFORE_GIVING_UP` timeouts in a row an issue's remaining rows in
the batch fail at once instead of taking the time limit each.

The scheduler loop (every worker runs one) publishes due scheduled issues, queues
the deliveries of published issues chunk by chunk (the fan-out), and sweeps
finished issues to ``sent``.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence

from herald.core import timebox
from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Unavailable, ValidationError
from herald.core.telemetry import get_logger
from herald.core.waiting import wait_any
from herald.delivery.domain import ClaimedDelivery, Outcomes, Suppressed
from herald.delivery.worker import Rendered
from herald.design.current import design_cache
from herald.design.domain import Design
from herald.email.layout import Branding
from herald.email.message import EmailMessage, PermanentFailure
from herald.engagement import repository as tracking
from herald.engagement.tokens import TrackingLinks
from herald.issues import repository
from herald.issues.rendering import (
    NO_ATTRIBUTES,
    CompiledIssue,
    attributes,
    compile_issue,
    describe_error,
    issue_email,
)
from herald.issues.repository import Recipient
from herald.issues.sandbox import RENDER_SECONDS
from herald.issues.webcopy import ViewLinks
from herald.subscriptions.domain import SubscriptionStatus
from herald.subscriptions.unsubscribe import unsubscribe_url

log = get_logger("herald.issues")

_CACHE_SIZE = 32
TIMEOUTS_BEFORE_GIVING_UP = 3


class _Broken:
    """An issue whose bodies cannot be compiled (saved before today's checks)."""

    def __init__(self, error: str) -> None:
        self.error = error


class _IssueLinks(dict[uuid.UUID | None, ViewLinks]):
    """Each issue's :class:`ViewLinks`, made the first time a batch needs them."""

    def __init__(self, settings: Settings) -> None:
        super().__init__()
        self._settings = settings

    def __missing__(self, issue_id: uuid.UUID | None) -> ViewLinks:
        if issue_id is None:  # a row with a compiled issue has its id
            raise KeyError(issue_id)
        links = self[issue_id] = ViewLinks(self._settings, issue_id)
        return links


class IssueDeliveries:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._designs = design_cache(db)  # the admin's design, its version checked every 2 s
        self._design = Design(0, Branding.from_settings(settings))  # until a batch reads it
        self._compiled: OrderedDict[uuid.UUID, CompiledIssue | _Broken] = OrderedDict()

    async def render(self, batch: Sequence[ClaimedDelivery]) -> list[Rendered]:
        design = await self._designs.design(self._settings)
        if design.version != self._design.version:  # a new design: issues compile with it
            self._design, self._compiled = design, OrderedDict()
        compiled, design = self._compiled, self._design  # this batch's, whatever comes next
        issue_ids = list({d.issue_id for d in batch if d.issue_id} - set(compiled))
        subscriber_ids = list({d.subscriber_id for d in batch if d.subscriber_id})
        if issue_ids:  # compiled first: whether their readers' attributes are needed
            async with self._db.connection() as conn:
                fresh = await repository.issues_for_rendering(conn, issue_ids)
                links = await tracking.links_for_rendering(conn, issue_ids)
            await asyncio.to_thread(self._render_batch, [], fresh, {}, compiled, design, links)
        used = [compiled.get(i) for i in {d.issue_id for d in batch if d.issue_id}]
        needs = any(isinstance(c, CompiledIssue) and c.uses_attributes for c in used)
        tracked = any(isinstance(c, CompiledIssue) and c.tracked_html is not None for c in used)
        async with self._db.connection() as conn:
            recipients = await repository.subscribers_for_rendering(
                conn, subscriber_ids, with_attributes=needs
            )
            untracked = await tracking.opted_out(conn, subscriber_ids) if tracked else set()
        return await asyncio.to_thread(
            self._render_batch, batch, {}, recipients, compiled, design, None, untracked
        )

    def _render_batch(
        self,
        batch: Sequence[ClaimedDelivery],
        fresh: dict[uuid.UUID, repository.RenderData],
        recipients: dict[uuid.UUID, Recipient],
        issues: OrderedDict[uuid.UUID, CompiledIssue | _Broken] | None = None,
        design: Design | None = None,
        tracked: Mapping[uuid.UUID, tuple[str, ...]] | None = None,
        untracked: Collection[uuid.UUID] = frozenset(),
    ) -> list[Rendered]:
        """Runs in a thread: compiling and rendering are CPU work. ``tracked``: the stored
        links of the fresh issues that are tracked; ``untracked``: readers who opted out."""
        issues = self._compiled if issues is None else issues
        for issue_id, data in fresh.items():
            _remember(issues, issue_id, self._compile(data, design or self._design, tracked))
        rendered: list[Rendered | None] = [None] * len(batch)
        jobs: list[tuple[int, CompiledIssue, Recipient]] = []
        links = _IssueLinks(self._settings)  # per issue: its readers' web-copy links
        view_links: dict[int, ViewLinks] = {}  # per position
        issue_params: dict[int, str] = {}  # per position: the unsubscribe link's "&issue=…"
        trackers: dict[uuid.UUID, TrackingLinks] = {}  # per tracked issue
        track: dict[int, TrackingLinks] = {}  # per position of a tracked copy
        for position, delivery in enumerate(batch):
            compiled = issues.get(delivery.issue_id) if delivery.issue_id else None
            recipient = recipients.get(delivery.subscriber_id) if delivery.subscriber_id else None
            if compiled is None:
                rendered[position] = PermanentFailure("the issue of this delivery no longer exists")
            elif isinstance(compiled, _Broken):
                rendered[position] = PermanentFailure(
                    f"the issue cannot be rendered: {compiled.error}"
                )
            elif recipient is None:
                rendered[position] = Suppressed("the subscriber no longer exists")
            elif recipient.status is not SubscriptionStatus.CONFIRMED:
                rendered[position] = Suppressed(f"the subscriber is {recipient.status}")
            else:
                jobs.append((position, compiled, recipient))
                view_links[position] = links[delivery.issue_id]
                issue_params[position] = links[delivery.issue_id].issue_param
                tracked_issue = delivery.issue_id if compiled.tracked_html is not None else None
                if tracked_issue is not None and recipient.id not in untracked:
                    if tracked_issue not in trackers:
                        trackers[tracked_issue] = TrackingLinks(self._settings, tracked_issue)
                    track[position] = trackers[tracked_issue]
        timeouts: dict[int, int] = {}  # id(compiled) -> timeouts in a row

        def one(job: tuple[int, CompiledIssue, Recipient]) -> EmailMessage | PermanentFailure:
            position, compiled, recipient = job
            if timeouts.get(id(compiled), 0) >= TIMEOUTS_BEFORE_GIVING_UP:
                return PermanentFailure(
                    f"the issue cannot be rendered: it took longer than {RENDER_SECONDS:g} "
                    f"seconds for {TIMEOUTS_BEFORE_GIVING_UP} recipients in a row"
                )
            message = issue_email(
                compiled,
                sender=self._settings.sender,
                recipient=recipient.email,
                name=recipient.name,
                unsubscribe_url=unsubscribe_url(self._settings, recipient.id)
                + issue_params[position],
                base_url=self._settings.public_base_url,
                view_url=view_links[position](recipient.id),
                attributes=(
                    attributes(recipient.attributes) if compiled.uses_attributes else NO_ATTRIBUTES
                ),
                track=track[position].urls(batch[position].id) if position in track else None,
            )
            timeouts.pop(id(compiled), None)
            return message

        def counted(job: tuple[int, CompiledIssue, Recipient]) -> EmailMessage | PermanentFailure:
            try:
                return one(job)
            except timebox.TimeLimitExceeded:
                timeouts[id(job[1])] = timeouts.get(id(job[1]), 0) + 1
                raise

        outcomes = timebox.run_each(jobs, counted, RENDER_SECONDS)
        for (position, _, _), outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome, BaseException):
                problem = describe_error(outcome)
                rendered[position] = PermanentFailure(f"the issue cannot be rendered: {problem}")
            else:
                rendered[position] = outcome
        return [r if r is not None else PermanentFailure("not rendered") for r in rendered]

    def _compile(
        self,
        data: repository.RenderData,
        design: Design,
        tracked: Mapping[uuid.UUID, tuple[str, ...]] | None,
    ) -> CompiledIssue | _Broken:
        try:
            return compile_issue(
                data.title,
                data.html,
                data.text,
                design.branding,
                preheader=data.preheader,
                layout_source=design.layout_source,
                tracked_links=(tracked or {}).get(data.id),
                base_url=self._settings.public_base_url,
            )
        except ValidationError as exc:
            return _Broken(exc.message)

    async def after_batch(
        self,
        batch: Sequence[ClaimedDelivery],
        outcomes: Outcomes,  # noqa: ARG002 - the worker's hook signature
    ) -> None:
        issue_ids = sorted({d.issue_id for d in batch if d.issue_id})
        if not issue_ids:
            return
        async with self._db.connection() as conn:
            for issue_id in await repository.complete_issues(conn, issue_ids):
                log.info("issue sent", issue_id=str(issue_id))
            for issue_id in issue_ids:
                await repository.notify_progress(conn, issue_id)


def _remember(
    issues: OrderedDict[uuid.UUID, CompiledIssue | _Broken],
    issue_id: uuid.UUID,
    compiled: CompiledIssue | _Broken,
) -> None:
    issues[issue_id] = compiled
    while len(issues) > _CACHE_SIZE:
        issues.popitem(last=False)


async def run_scheduler(
    db: Database,
    settings: Settings,
    stop: asyncio.Event,
    interval: float = 5.0,
    wake: asyncio.Event | None = None,
) -> None:
    """Every worker runs this: publish scheduled issues when their time comes, queue the
    deliveries of published issues chunk by chunk (several workers take turns on
    one issue's chunks), and finish issues whose last batch's worker died before
    marking them sent. ``wake`` (set on ``NOTIFY herald_deliveries``) starts a round
    early, so a fan-out begins within milliseconds of publishing."""
    from herald.issues.service import IssueService

    service = IssueService(db, settings)
    wake = wake or asyncio.Event()
    while not stop.is_set():
        wake.clear()
        try:
            for issue_id in await service.publish_due():
                log.info("scheduled issue published", issue_id=str(issue_id))
            while not stop.is_set() and await service.fan_out_step() is not None:
                pass
            for issue_id in await service.complete_finished():
                log.info("issue sent (sweep)", issue_id=str(issue_id))
        except Unavailable as exc:
            log.warning("scheduler skipped a round: database unavailable", error=exc.message)
        except Exception:
            log.exception("scheduler round failed; trying again next round")
        await wait_any(stop, wake, timeout=interval)
