"""Newsletter issue use cases: drafts, publishing (fan-out), scheduling, test sends, retries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from herald.core.config import Settings
from herald.core.db import Connection, Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.core.telemetry import get_logger
from herald.delivery import repository as deliveries
from herald.issues import repository
from herald.issues.domain import IssueContent, IssueStatus, require_editable
from herald.issues.rendering import check_renders, compile_issue, issue_email
from herald.issues.repository import Issue
from herald.subscriptions.domain import SubscriberEmail

log = get_logger("herald.issues")

ISSUE_KIND = "issue"
TEST_KIND = "test"
STATUSES = ("queued", "sending", "sent", "failed", "suppressed")


@dataclass(frozen=True, slots=True)
class Progress:
    issue_id: uuid.UUID
    status: IssueStatus
    recipients: int
    counts: dict[str, int]

    @property
    def done(self) -> int:
        return sum(self.counts.get(s, 0) for s in ("sent", "failed", "suppressed"))

    @property
    def percent(self) -> float:
        if self.status not in (IssueStatus.PUBLISHING, IssueStatus.SENT):
            return 0.0
        return 100.0 * self.done / self.recipients if self.recipients else 100.0

    def as_json(self) -> dict[str, object]:
        return {
            "issue_id": str(self.issue_id),
            "status": self.status.value,
            "recipients": self.recipients,
            "percent": round(self.percent, 1),
            **{s: self.counts.get(s, 0) for s in STATUSES},
        }


def validate(content: IssueContent) -> None:
    check_renders(compile_issue(content.title, content.html, content.text))


@dataclass(frozen=True)
class IssueService:
    db: Database
    settings: Settings

    async def create_draft(self, content: IssueContent, created_by: uuid.UUID | None) -> uuid.UUID:
        validate(content)
        async with self.db.connection() as conn:
            issue_id = await repository.insert_issue(conn, content, created_by)
        log.info("issue drafted", issue_id=str(issue_id))
        return issue_id

    async def update(self, issue_id: uuid.UUID, content: IssueContent) -> None:
        validate(content)
        async with self.db.transaction() as conn:
            issue = await self._get(conn, issue_id)
            require_editable(issue.status)
            await repository.update_issue(conn, issue_id, content)

    async def get(self, issue_id: uuid.UUID) -> Issue:
        async with self.db.connection() as conn:
            return await self._get(conn, issue_id)

    async def recent(self, limit: int = 100) -> list[Issue]:
        async with self.db.connection() as conn:
            return await repository.list_issues(conn, limit)

    async def _get(self, conn: Connection, issue_id: uuid.UUID) -> Issue:
        issue = await repository.get_issue(conn, issue_id)
        if issue is None:
            raise NotFound("no such newsletter issue")
        return issue

    # -- publishing ------------------------------------------------------------------

    async def publish(self, issue_id: uuid.UUID) -> int:
        """Publish now: every confirmed subscriber gets one queued delivery."""
        async with self.db.transaction() as conn:
            return await self.publish_in(conn, issue_id)

    async def publish_in(self, conn: Connection, issue_id: uuid.UUID) -> int:
        """Publish inside the caller's transaction (the contract form's idempotency)."""
        if not await repository.start_publishing(conn, issue_id):
            issue = await self._get(conn, issue_id)
            raise Conflict(f"this issue is {issue.status.value}: it cannot be published again")
        recipients = await repository.fan_out(conn, issue_id, self.settings.delivery.max_attempts)
        log.info("issue published", issue_id=str(issue_id), recipients=recipients)
        if recipients == 0:
            await repository.complete_issues(conn, [issue_id])
        await repository.notify_progress(conn, issue_id)  # delivered at commit
        return recipients

    async def schedule(self, issue_id: uuid.UUID, at: datetime) -> None:
        if at.tzinfo is None:
            raise ValidationError("the schedule time needs a time zone", field="scheduled_at")
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
        """Publish scheduled issues whose time has come (run by every worker; SKIP LOCKED)."""
        published: list[uuid.UUID] = []
        async with self.db.transaction() as conn:
            for issue_id in await repository.lock_due_issues(conn):
                await self.publish_in(conn, issue_id)
                published.append(issue_id)
        return published

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

    async def send_test(self, issue_id: uuid.UUID, email: str, name: str = "Test Reader") -> None:
        """Queue one rendered copy to ``email`` (its unsubscribe link is inert)."""
        address = SubscriberEmail.parse(email)
        async with self.db.transaction() as conn:
            issue = await self._get(conn, issue_id)
            compiled = compile_issue(f"[TEST] {issue.title}", issue.html, issue.text)
            message = issue_email(
                compiled,
                sender=self.settings.sender,
                recipient=address.value,
                name=name,
                unsubscribe_url=f"{self.settings.public_base_url}/unsubscribe/one-click?token=test",
                base_url=self.settings.public_base_url,
            )
            await deliveries.enqueue(
                conn,
                kind=TEST_KIND,
                message=message,
                max_attempts=self.settings.delivery.max_attempts,
            )

    async def progress(self, issue_id: uuid.UUID) -> Progress:
        async with self.db.connection() as conn:
            issue = await self._get(conn, issue_id)
            counts = await repository.delivery_counts(conn, issue_id)
        recipients = issue.recipients if issue.recipients is not None else sum(counts.values())
        return Progress(issue_id, issue.status, recipients, counts)
