"""The only door to ``newsletter_issues`` and the issue side of ``deliveries``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald.core import live, sql
from herald.core.db import Connection
from herald.deliverability.domain import EventKind
from herald.delivery.domain import DeliveryStatus
from herald.issues.domain import Issue, IssueContent, IssueStatus, ListRef, SegmentRef, Target
from herald.issues.targets import Condition, with_segment
from herald.subscriptions.domain import SubscriptionStatus

Q = sql.load("herald.issues")


def _issue(row: Any) -> Issue:
    return Issue(
        id=row["id"],
        title=row["title"],
        markdown=row["markdown"],
        html=row["html_content"],
        text=row["text_content"],
        status=IssueStatus(row["status"]),
        scheduled_at=row["scheduled_at"],
        published_at=row["published_at"],
        completed_at=row["completed_at"],
        recipients=row["recipients"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        fanout_done_at=row["fanout_done_at"],
        fanout_error=row["fanout_error"],
        fanout_attempts=row["fanout_attempts"],
        fanout_retry_at=row["fanout_retry_at"],
        publish_error=row["publish_error"],
        publish_attempts=row["publish_attempts"],
        publish_retry_at=row["publish_retry_at"],
        preheader=row["preheader"],
        target=_target(row),
        tracking=row["tracking"],
        public=row["public"],
        archive_slug=row["archive_slug"],
    )


def _target(row: Any) -> Target:
    lists = zip(row["list_slugs"] or (), row["list_names"] or (), strict=True)
    segment = row["segment_id"]
    return Target(
        tuple(ListRef(slug, name) for slug, name in lists),
        SegmentRef(segment, row["segment_name"]) if segment else None,
    )


async def insert_issue(
    conn: Connection, content: IssueContent, created_by: uuid.UUID | None
) -> uuid.UUID:
    issue_id = uuid.uuid4()
    await conn.execute(
        Q["insert_issue"],
        issue_id,
        content.title,
        content.markdown,
        content.html,
        content.text,
        created_by,
        content.preheader,
    )
    return issue_id


async def update_issue(conn: Connection, issue_id: uuid.UUID, content: IssueContent) -> bool:
    updated = await conn.fetchval(
        Q["update_issue"],
        issue_id,
        content.title,
        content.markdown,
        content.html,
        content.text,
        content.preheader,
    )
    return updated is not None


async def get_issue(conn: Connection, issue_id: uuid.UUID) -> Issue | None:
    row = await conn.fetchrow(Q["get_issue"], issue_id)
    return _issue(row) if row else None


async def list_issues(
    conn: Connection, limit: int = 100, before: tuple[datetime, uuid.UUID] | None = None
) -> list[Issue]:
    """Newest first; ``before``: the (created_at, id) of the previous page's last issue."""
    at, last_id = before if before else (None, None)
    return [_issue(row) for row in await conn.fetch(Q["list_issues"], limit, at, last_id)]


async def unsent_counts(
    conn: Connection, issue_ids: list[uuid.UUID]
) -> dict[uuid.UUID, dict[DeliveryStatus, int]]:
    """Per issue, its deliveries in every status but ``sent`` (see queries.sql)."""
    counts: dict[uuid.UUID, dict[DeliveryStatus, int]] = {i: {} for i in issue_ids}
    for row in await conn.fetch(Q["unsent_counts"], issue_ids):
        counts[row["issue_id"]][DeliveryStatus(row["status"])] = int(row["n"])
    return counts


async def feedback_counts(
    conn: Connection, issue_ids: list[uuid.UUID], *, delivered: bool = False
) -> dict[uuid.UUID, dict[EventKind, int]]:
    """Per issue, the recipients each kind of provider event was reported for; with
    ``delivered``, the delivered and deferred ones too (see queries.sql)."""
    counts: dict[uuid.UUID, dict[EventKind, int]] = {i: {} for i in issue_ids}
    for row in await conn.fetch(Q["feedback_counts"], issue_ids, delivered):
        counts[row["issue_id"]][EventKind(row["kind"])] = int(row["n"])
    return counts


async def failure_reasons(
    conn: Connection, issue_id: uuid.UUID, limit: int, sample: int
) -> list[tuple[str, int]]:
    """The ``limit`` most common reasons among the issue's last queued ``sample`` failures."""
    rows = await conn.fetch(Q["failure_reasons"], issue_id, limit, sample)
    return [(row["reason"], int(row["n"])) for row in rows]


async def start_publishing(
    conn: Connection, issue_id: uuid.UUID, traceparent: str | None = None
) -> bool:
    """Mark the issue publishing (its deliveries are queued by the workers); wakes them.
    ``traceparent``: the publishing span, which the workers' spans will link to."""
    started = await conn.fetchval(Q["start_publishing"], issue_id, traceparent) is not None
    if started:
        await conn.execute(Q["wake_workers"])  # delivered at commit
        await notify_status(conn, issue_id, IssueStatus.PUBLISHING)
    return started


@dataclass(frozen=True, slots=True)
class FanOutStep:
    issue_id: uuid.UUID
    queued: int  # rows this chunk queued
    recipients: int  # rows queued for the issue so far
    done: bool  # every confirmed subscriber has a delivery now


@dataclass(frozen=True, slots=True)
class FanOutClaim:
    issue_id: uuid.UUID
    cursor: uuid.UUID | None  # the last subscriber queued so far
    traceparent: str | None  # where the publish was traced


async def claim_fanout(conn: Connection) -> FanOutClaim | None:
    """Lock the next issue still fanning out (inside a transaction)."""
    row = await conn.fetchrow(Q["claim_fanout"])
    return FanOutClaim(row["id"], row["fanout_cursor"], row["traceparent"]) if row else None


async def fan_out_chunk(
    conn: Connection,
    issue_id: uuid.UUID,
    cursor: uuid.UUID | None,
    *,
    chunk: int,
    max_attempts: int,
    segment: Condition = None,
    one_list: bool = False,
) -> FanOutStep:
    """Queue the issue's next recipients after ``cursor`` (``segment``: its segment, see
    issues/targets.py; ``one_list``: it goes to one list, which needs no merge)."""
    query = Q["fan_out_chunk_one_list"] if one_list else Q["fan_out_chunk"]
    statement, params = with_segment(query, segment, 5)
    row = await conn.fetchrow(statement, issue_id, cursor, chunk, max_attempts, *params)
    assert row is not None, "the issue is locked by this transaction"
    return FanOutStep(issue_id, row["queued"], row["recipients"], row["done"])


async def fanout_failed(
    conn: Connection, issue_id: uuid.UUID, error: str, *, base: float, cap: float
) -> int | None:
    """Record a failed chunk and back off; the number of failures in a row."""
    attempts: int | None = await conn.fetchval(Q["fanout_failed"], issue_id, error, base, cap)
    return attempts


async def schedule(conn: Connection, issue_id: uuid.UUID, at: datetime) -> bool:
    scheduled = await conn.fetchval(Q["schedule_issue"], issue_id, at) is not None
    if scheduled:
        await notify_status(conn, issue_id, IssueStatus.SCHEDULED)
    return scheduled


async def unschedule(conn: Connection, issue_id: uuid.UUID) -> bool:
    unscheduled = await conn.fetchval(Q["unschedule_issue"], issue_id) is not None
    if unscheduled:
        await notify_status(conn, issue_id, IssueStatus.DRAFT)
    return unscheduled


async def lock_due_issue(conn: Connection) -> uuid.UUID | None:
    """One scheduled issue whose time has come, locked for this transaction."""
    issue_id: uuid.UUID | None = await conn.fetchval(Q["due_issue"])
    return issue_id


async def publish_failed(
    conn: Connection, issue_id: uuid.UUID, error: str, *, base: float, cap: float, to_draft: bool
) -> int | None:
    """Record a failed scheduled publish: back to draft, or retried with backoff."""
    attempts: int | None = await conn.fetchval(
        Q["publish_failed"], issue_id, error, base, cap, to_draft
    )
    if attempts is not None and to_draft:
        await notify_status(conn, issue_id, IssueStatus.DRAFT)
    return attempts


async def delivery_counts(conn: Connection, issue_id: uuid.UUID) -> dict[DeliveryStatus, int]:
    rows = await conn.fetch(Q["delivery_counts"], issue_id)
    return {DeliveryStatus(row["status"]): int(row["n"]) for row in rows}


async def complete_issues(conn: Connection, issue_ids: list[uuid.UUID]) -> list[uuid.UUID]:
    """Mark sent those of ``issue_ids`` with nothing queued or in flight; the ones marked.

    A cheap probe per issue first: most calls (after every batch) find work pending, and the
    guarded UPDATE is only worth running when it is not."""
    done = [i for i in issue_ids if not await conn.fetchval(Q["has_pending_deliveries"], i)]
    if not done:
        return []
    async with conn.transaction():
        locked = [row["id"] for row in await conn.fetch(Q["lock_publishing_issues"], done)]
        if not locked:
            return []
        completed = [row["id"] for row in await conn.fetch(Q["complete_issues"], locked)]
        for issue_id in completed:
            await conn.execute(Q["compact_delivery_counts"], issue_id)
            await notify_status(conn, issue_id, IssueStatus.SENT)
        return completed


async def complete_finished_issues(conn: Connection) -> list[uuid.UUID]:
    """The sweep: finish any publishing issue whose last batch's worker died before its
    after-batch step (run by every worker's scheduler loop)."""
    publishing = [row["id"] for row in await conn.fetch(Q["publishing_issues"])]
    return await complete_issues(conn, publishing)


async def retry_failed(conn: Connection, issue_id: uuid.UUID) -> int:
    """Queue an issue's failed deliveries again, reopening the issue first (its row lock
    orders this against a concurrent complete_issues)."""
    async with conn.transaction():
        if await conn.fetchval(Q["reopen_for_retry"], issue_id) is not None:
            await notify_status(conn, issue_id, IssueStatus.PUBLISHING)
        row = await conn.fetchrow(Q["retry_failed"], issue_id)
    return int(row["retried"]) if row else 0


@dataclass(frozen=True, slots=True)
class RenderData:
    id: uuid.UUID
    title: str
    html: str
    text: str
    preheader: str = ""


async def issues_for_rendering(
    conn: Connection, issue_ids: list[uuid.UUID]
) -> dict[uuid.UUID, RenderData]:
    rows = await conn.fetch(Q["issues_for_rendering"], issue_ids)
    return {
        r["id"]: RenderData(
            r["id"], r["title"], r["html_content"], r["text_content"], r["preheader"]
        )
        for r in rows
    }


@dataclass(frozen=True, slots=True)
class Recipient:
    id: uuid.UUID
    email: str
    name: str
    status: SubscriptionStatus
    attributes: str | None = None  # JSON text, read only for issues that use attributes


async def subscribers_for_rendering(
    conn: Connection, subscriber_ids: list[uuid.UUID], *, with_attributes: bool = False
) -> dict[uuid.UUID, Recipient]:
    if with_attributes:
        rows = await conn.fetch(Q["subscribers_with_attributes"], subscriber_ids)
        return {
            r["id"]: Recipient(
                r["id"], r["email"], r["name"], SubscriptionStatus(r["status"]), r["attributes"]
            )
            for r in rows
        }
    rows = await conn.fetch(Q["subscribers_for_rendering"], subscriber_ids)
    return {
        r["id"]: Recipient(r["id"], r["email"], r["name"], SubscriptionStatus(r["status"]))
        for r in rows
    }


@dataclass(frozen=True, slots=True)
class WebCopyData:
    issue: RenderData
    email: str
    name: str
    attributes: str = "{}"


async def web_copy(
    conn: Connection, issue_id: uuid.UUID, subscriber_id: uuid.UUID
) -> WebCopyData | None:
    """A sent (or publishing) issue and one subscriber, for their web copy; else None."""
    r = await conn.fetchrow(Q["web_copy"], issue_id, subscriber_id)
    if r is None:
        return None
    issue = RenderData(issue_id, r["title"], r["html_content"], r["text_content"], r["preheader"])
    return WebCopyData(issue, r["email"], r["name"], r["attributes"])


async def notify_progress(conn: Connection, issue_id: uuid.UUID) -> None:
    await conn.execute(Q["notify_progress"], str(issue_id))


async def notify_status(conn: Connection, issue_id: uuid.UUID, status: IssueStatus) -> None:
    """The live ``issue.status`` event (``core/live.py``), delivered at commit."""
    await live.notify(conn, live.event("issue.status", issue_id=str(issue_id), status=status))


async def issue_gauges(conn: Connection) -> list[tuple[str, int, int]]:
    """(status, issues, recipients) for every issue status in use."""
    rows = await conn.fetch(Q["issue_gauges"])
    return [(row["status"], int(row["issues"]), int(row["recipients"])) for row in rows]


async def publishing_delivery_counts(conn: Connection) -> dict[str, int]:
    """Deliveries of the issues being published, by delivery status."""
    rows = await conn.fetch(Q["publishing_delivery_counts"])
    return {row["status"]: int(row["n"]) for row in rows}
