"""Newsletter issue use cases: drafts, publishing (fan-out), scheduling, retries, progress.

What the issue pages only read (overviews, previews) is in ``issues/views.py``; test sends
are ``issues/proofs.py``."""

from __future__ import annotations

import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Protocol, TypeVar

from herald.core import tracing
from herald.core.config import Settings
from herald.core.db import Connection, Database
from herald.core.errors import Conflict, NotFound, Unavailable, ValidationError
from herald.core.telemetry import get_logger
from herald.delivery.domain import DeliveryStatus
from herald.engagement import repository as tracking
from herald.engagement.links import tracked_links
from herald.issues import publicity, repository, targeting, targets
from herald.issues.domain import Issue, IssueContent, IssueStatus, TargetChoice, require_editable
from herald.issues.progress_state import STATUSES, Progress
from herald.issues.rendering import (
    check_renders,
    compile_issue,
    off_loop,
)
from herald.issues.repository import FanOutClaim, FanOutStep

__all__ = ["STATUSES", "IssueService", "Once", "Progress", "validate"]

log = get_logger("herald.issues")

# Backoff of a failed fan-out chunk or scheduled publish: 5 s, 10 s, … capped at 10 min.
RETRY_BASE_SECONDS = 5.0
RETRY_CAP_SECONDS = 600.0


R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class Once(Protocol[R_co]):
    """An idempotency key held in the caller's transaction (``admin/idempotency.py`` keeps
    the newsletter form's: the first response, replayed for 24 hours)."""

    async def earlier(self, conn: Connection) -> R_co | None:
        """The first request's result when the key was used before; None: go ahead.
        A concurrent first request holding the key makes this wait for its commit."""
        ...

    async def done(self, conn: Connection) -> R_co:
        """This request's result, stored under the key in the same transaction."""
        ...


async def validate(content: IssueContent) -> None:
    """Compile the bodies and render a sample, off the event loop: a 400 naming the
    problem for anything a template does wrong (errors, limits, time)."""
    await off_loop(
        lambda: check_renders(
            compile_issue(content.title, content.html, content.text, preheader=content.preheader)
        )
    )


@dataclass(frozen=True)
class IssueService:
    db: Database
    settings: Settings

    async def create_draft(
        self,
        content: IssueContent,
        created_by: uuid.UUID | None,
        target: TargetChoice | None = None,
        track: bool = False,
    ) -> uuid.UUID:
        """A new draft (without ``target``: to the default list; ``track``: opens counted)."""
        await validate(content)
        async with self.db.transaction() as conn:
            issue_id = await repository.insert_issue(conn, content, created_by)
            await publicity.set_public(conn, issue_id, content.public or None)
            if target is not None:
                await targeting.apply(conn, issue_id, target)
            if track:
                await tracking.set_tracking(conn, issue_id, on=True)
        log.info("issue drafted", issue_id=str(issue_id))
        return issue_id

    async def update(
        self,
        issue_id: uuid.UUID,
        content: IssueContent,
        target: TargetChoice | None = None,
        track: bool | None = None,
    ) -> None:
        """Save a draft's (or scheduled issue's) content and, if given, target and tracking."""
        await validate(content)
        async with self.db.transaction() as conn:
            issue = await self._get(conn, issue_id)
            require_editable(issue.status)
            if not await repository.update_issue(conn, issue_id, content):
                # Published between the check and the write: nothing was saved.
                issue = await self._get(conn, issue_id)
                require_editable(issue.status)
                raise Conflict("the issue changed while it was being saved: nothing was saved")
            await publicity.set_public(conn, issue_id, content.public)
            if target is not None:
                await targeting.apply(conn, issue_id, target)
            if track is not None:  # the update above holds the row: still editable here
                await tracking.set_tracking(conn, issue_id, on=track)

    async def get(self, issue_id: uuid.UUID) -> Issue:
        async with self.db.connection() as conn:
            return await self._get(conn, issue_id)

    async def _get(self, conn: Connection, issue_id: uuid.UUID) -> Issue:
        issue = await repository.get_issue(conn, issue_id)
        if issue is None:
            raise NotFound("no such newsletter issue")
        return issue

    # The JSON API's changes answer the issue as it is afterwards.
    async def draft(
        self,
        content: IssueContent,
        created_by: uuid.UUID | None,
        target: TargetChoice | None = None,
        track: bool = False,
    ) -> Issue:
        return await self.get(await self.create_draft(content, created_by, target, track))

    async def revise(
        self,
        issue_id: uuid.UUID,
        content: IssueContent,
        target: TargetChoice | None = None,
        track: bool | None = None,
    ) -> Issue:
        await self.update(issue_id, content, target, track)
        return await self.get(issue_id)

    async def publish_now(self, issue_id: uuid.UUID) -> Issue:
        await self.publish(issue_id)
        return await self.get(issue_id)

    async def schedule_at(self, issue_id: uuid.UUID, at: datetime) -> Issue:
        await self.schedule(issue_id, at)
        return await self.get(issue_id)

    async def unschedule(self, issue_id: uuid.UUID) -> Issue:
        await self.cancel_schedule(issue_id)
        return await self.get(issue_id)

    # -- publishing ------------------------------------------------------------------

    async def publish_new(
        self, content: IssueContent, created_by: uuid.UUID | None, once: Once[R]
    ) -> R:
        """Create an issue and publish it at once (POST /admin/newsletters), once per key: the
        key's claim, the issue, its publishing and the stored result commit together; a
        repeated key (also one racing this request) gets the first result, nothing new."""
        await validate(content)
        async with self.db.transaction() as conn:
            earlier = await once.earlier(conn)
            if earlier is not None:
                return earlier
            issue_id = await repository.insert_issue(conn, content, created_by)
            await self.publish_in(conn, issue_id)
            return await once.done(conn)

    async def publish(self, issue_id: uuid.UUID) -> None:
        """Publish now: the workers queue one delivery per confirmed subscriber."""
        async with self.db.transaction() as conn:
            await self.publish_in(conn, issue_id)

    async def publish_in(self, conn: Connection, issue_id: uuid.UUID) -> None:
        """Publish inside the caller's transaction.

        Only marks the issue: the fan-out runs in the workers (:meth:`fan_out_step`), so
        this returns in milliseconds whatever the number of subscribers. The bodies are
        rendered once with sample values first, so a broken issue is refused here.
        The current span (the request's, or the scheduler's) is stored with the issue:
        the workers' spans link to it."""
        issue = await self._get(conn, issue_id)
        if issue.status.editable:
            await validate(
                IssueContent(issue.title, issue.html, issue.text, issue.markdown, issue.preheader)
            )
            await targeting.condition(conn, issue.target)  # a segment that cannot be sent: 400
        if not await repository.start_publishing(conn, issue_id, tracing.current_traceparent()):
            issue = await self._get(conn, issue_id)
            raise Conflict(f"this issue is {issue.status.value}: it cannot be published again")
        if issue.tracking:  # its links, fixed from now on: a click can only lead to one
            base_url = self.settings.public_base_url  # a 2 MiB body: CPU, off the loop
            links = await off_loop(lambda: tracked_links(issue.html, base_url))
            await tracking.freeze_links(conn, issue_id, links)
        log.info("issue published", issue_id=str(issue_id))
        await repository.notify_progress(conn, issue_id)  # delivered at commit

    async def fan_out_step(self) -> FanOutStep | None:
        """Queue the next chunk of the oldest issue still fanning out; None when there is
        none. A chunk that fails is recorded on the issue and retried with backoff.

        A chunk is one span (from the claim to the commit) linked to the publish."""
        chunk = self.settings.delivery.fanout_chunk
        claimed: FanOutClaim | None = None
        started = time.time_ns()
        try:
            with ExitStack() as span_of_chunk:
                async with self.db.transaction() as conn:
                    claimed = await repository.claim_fanout(conn)
                    if claimed is None:
                        return None
                    issue_id = claimed.issue_id
                    span = span_of_chunk.enter_context(
                        tracing.span(
                            "herald.issues.fan_out",
                            start_ns=started,
                            links=[claimed.traceparent],
                            attributes={"herald.issue_id": str(issue_id), "herald.chunk": chunk},
                        )
                    )
                    issue = await self._get(conn, issue_id)
                    segment = await targeting.condition(conn, issue.target)
                    attempts = self.settings.delivery.max_attempts
                    step = await repository.fan_out_chunk(
                        conn,
                        issue_id,
                        claimed.cursor,
                        chunk=chunk,
                        max_attempts=attempts,
                        segment=segment,
                        one_list=len(issue.target.lists) == 1,
                    )
                    if step.done:  # and the default list's readers the backfill has not reached
                        late = await targets.fan_out_unlisted(conn, issue_id, attempts, segment)
                        step = replace(
                            step, queued=step.queued + late, recipients=step.recipients + late
                        )
                    span.set("herald.queued", step.queued)
                    span.set("herald.fanout_done", step.done)
                    if step.done:
                        await repository.complete_issues(conn, [issue_id])  # nobody to send to
                        log.info(
                            "issue fanned out", issue_id=str(issue_id), recipients=step.recipients
                        )
                    await repository.notify_progress(conn, issue_id)
        except Unavailable:
            raise
        except Exception as exc:  # recorded on the issue, retried with backoff
            if claimed is None:
                raise
            await self._fanout_failed(claimed.issue_id, exc)
            return FanOutStep(claimed.issue_id, 0, 0, done=False)
        return step

    async def _fanout_failed(self, issue_id: uuid.UUID, exc: Exception) -> None:
        error = f"queueing recipients failed: {type(exc).__name__}: {exc}"
        async with self.db.connection() as conn:
            failures = await repository.fanout_failed(
                conn, issue_id, error, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS
            )
            await repository.notify_progress(conn, issue_id)
        log.warning("fan-out chunk failed", issue_id=str(issue_id), error=error, failures=failures)

    async def schedule(self, issue_id: uuid.UUID, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValidationError("the schedule time needs a time zone", field="scheduled_at")
        try:
            at = at.astimezone(UTC)  # as Postgres stores it: past year 9999 it cannot
        except OverflowError:
            raise ValidationError(
                "the schedule time is out of range", field="scheduled_at"
            ) from None
        if at <= datetime.now(UTC):
            raise ValidationError("the schedule time must be in the future", field="scheduled_at")
        async with self.db.transaction() as conn:
            issue = await self._get(conn, issue_id)
            require_editable(issue.status)
            await repository.schedule(conn, issue_id, at)
        log.info("issue scheduled", issue_id=str(issue_id), at=at.isoformat())

    async def cancel_schedule(self, issue_id: uuid.UUID) -> None:
        async with self.db.connection() as conn:
            if not await repository.unschedule(conn, issue_id):
                issue = await self._get(conn, issue_id)
                raise Conflict(f"this issue is {issue.status.value}, not scheduled")

    async def publish_due(self) -> list[uuid.UUID]:
        """Publish scheduled issues whose time has come (run by every worker; SKIP LOCKED).

        Each issue in its own transaction: one that fails is recorded on the issue (back
        to draft when its content cannot be rendered; retried with backoff otherwise) and
        does not hold back the others."""
        published: list[uuid.UUID] = []
        failed: set[uuid.UUID] = set()
        while True:
            issue_id: uuid.UUID | None = None
            started = time.time_ns()
            try:
                async with self.db.transaction() as conn:
                    issue_id = await repository.lock_due_issue(conn)
                    if issue_id is None or issue_id in failed:
                        return published
                    with tracing.span(
                        "herald.issues.publish_scheduled",
                        start_ns=started,
                        attributes={"herald.issue_id": str(issue_id)},
                    ):
                        await self.publish_in(conn, issue_id)
                published.append(issue_id)
            except Unavailable:
                raise
            except Exception as exc:
                if issue_id is None:
                    raise
                failed.add(issue_id)
                await self._publish_failed(issue_id, exc)

    async def _publish_failed(self, issue_id: uuid.UUID, exc: Exception) -> None:
        permanent = isinstance(exc, ValidationError | Conflict)
        detail = exc.message if isinstance(exc, ValidationError | Conflict) else repr(exc)
        error = f"scheduled publishing failed: {detail}"
        async with self.db.connection() as conn:
            attempts = await repository.publish_failed(
                conn,
                issue_id,
                error,
                base=RETRY_BASE_SECONDS,
                cap=RETRY_CAP_SECONDS,
                to_draft=permanent,
            )
            await repository.notify_progress(conn, issue_id)
        log.warning(
            "scheduled publish failed",
            issue_id=str(issue_id),
            error=error,
            attempts=attempts,
            back_to_draft=permanent,
        )

    async def complete_finished(self) -> list[uuid.UUID]:
        """Mark sent every publishing issue with nothing left in flight (a safety sweep)."""
        async with self.db.connection() as conn:
            finished = await repository.complete_finished_issues(conn)
            for issue_id in finished:
                await repository.notify_progress(conn, issue_id)
        return finished

    async def retry_failed(self, issue_id: uuid.UUID) -> int:
        async with self.db.connection() as conn:
            await self._get(conn, issue_id)
            retried = await repository.retry_failed(conn, issue_id)
            await repository.notify_progress(conn, issue_id)
        log.info("failed deliveries retried", issue_id=str(issue_id), retried=retried)
        return retried

    async def publish_preview(self, issue_id: uuid.UUID) -> tuple[Issue, int]:
        """The issue, and how many readers would get it if published now (a 400 when it
        cannot be published to its target)."""
        async with self.db.connection() as conn:
            issue = await self._get(conn, issue_id)
            segment = await targeting.condition(conn, issue.target)
            return issue, await targets.count_recipients(conn, issue_id, segment)

    async def progress(self, issue_id: uuid.UUID) -> Progress:
        return (await self.with_progress(issue_id))[1]

    async def with_progress(self, issue_id: uuid.UUID) -> tuple[Issue, Progress]:
        """The issue and its progress, read together (one connection, one issue row)."""
        async with self.db.connection() as conn:
            issue = await self._get(conn, issue_id)
            counts = await repository.delivery_counts(conn, issue_id)
        return issue, self._progress(issue, counts)

    @staticmethod
    def _progress(issue: Issue, counts: dict[DeliveryStatus, int]) -> Progress:
        recipients = issue.recipients if issue.recipients is not None else sum(counts.values())
        progress = Progress(
            issue.id,
            issue.status,
            recipients,
            counts,
            fanning_out=issue.fanning_out,
            fanout_error=issue.fanout_error if issue.fanning_out else None,
        )
        # The average since publishing; an open progress stream replaces it with the rate
        # of its last minute (issues/progress.py).
        if issue.status is IssueStatus.PUBLISHING and issue.published_at is not None:
            minutes = (datetime.now(UTC) - issue.published_at).total_seconds() / 60
            if minutes > 0 and progress.done:
                progress = replace(progress, rate_per_min=progress.done / minutes)
        return progress
