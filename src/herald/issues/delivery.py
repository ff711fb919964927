"""How the delivery worker sends issue deliveries.

Issue rows carry no message: each batch is rendered at send time from the issue
(compiled once per worker) and the subscriber's *current* row. That is where
suppression is re-checked: someone who unsubscribed after the issue was queued
is recorded as ``suppressed`` and not sent. After each batch, finished issues
are marked ``sent`` and a progress notification goes out to web processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import OrderedDict
from collections.abc import Sequence

from jinja2 import TemplateError

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Unavailable
from herald.core.telemetry import get_logger
from herald.delivery.domain import ClaimedDelivery, Outcomes, Suppressed
from herald.delivery.worker import Rendered
from herald.email.message import PermanentFailure
from herald.issues import repository
from herald.issues.rendering import CompiledIssue, compile_issue, issue_email
from herald.subscriptions.unsubscribe import unsubscribe_url

log = get_logger("herald.issues")

_CACHE_SIZE = 32


class IssueDeliveries:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings
        self._compiled: OrderedDict[uuid.UUID, CompiledIssue] = OrderedDict()

    async def render(self, batch: Sequence[ClaimedDelivery]) -> list[Rendered]:
        issue_ids = list({d.issue_id for d in batch if d.issue_id} - set(self._compiled))
        subscriber_ids = list({d.subscriber_id for d in batch if d.subscriber_id})
        async with self._db.connection() as conn:
            fresh = await repository.issues_for_rendering(conn, issue_ids) if issue_ids else {}
            recipients = await repository.subscribers_for_rendering(conn, subscriber_ids)
        for issue_id, data in fresh.items():
            self._remember(issue_id, compile_issue(data.title, data.html, data.text))
        base_url = self._settings.public_base_url
        rendered: list[Rendered] = []
        for delivery in batch:
            compiled = self._compiled.get(delivery.issue_id) if delivery.issue_id else None
            if compiled is None:
                rendered.append(PermanentFailure("the issue of this delivery no longer exists"))
                continue
            recipient = recipients.get(delivery.subscriber_id) if delivery.subscriber_id else None
            if recipient is None:
                rendered.append(Suppressed("the subscriber no longer exists"))
                continue
            if recipient.status != "confirmed":
                rendered.append(Suppressed(f"the subscriber is {recipient.status}"))
                continue
            try:
                rendered.append(
                    issue_email(
                        compiled,
                        sender=self._settings.sender,
                        recipient=recipient.email,
                        name=recipient.name,
                        unsubscribe_url=unsubscribe_url(self._settings, recipient.id),
                        base_url=base_url,
                    )
                )
            except TemplateError as exc:
                rendered.append(PermanentFailure(f"the issue cannot be rendered: {exc}"))
        return rendered

    def _remember(self, issue_id: uuid.UUID, compiled: CompiledIssue) -> None:
        self._compiled[issue_id] = compiled
        while len(self._compiled) > _CACHE_SIZE:
            self._compiled.popitem(last=False)

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


async def run_scheduler(
    db: Database, settings: Settings, stop: asyncio.Event, interval: float = 5.0
) -> None:
    """Publish scheduled issues when their time comes, and finish issues whose last
    batch's worker died before marking them sent (every worker runs this)."""
    from herald.issues.service import IssueService

    service = IssueService(db, settings)
    while not stop.is_set():
        try:
            for issue_id in await service.publish_due():
                log.info("scheduled issue published", issue_id=str(issue_id))
            for issue_id in await service.complete_finished():
                log.info("issue sent (sweep)", issue_id=str(issue_id))
        except Unavailable as exc:
            log.warning("scheduler skipped a round: database unavailable", error=exc.message)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
