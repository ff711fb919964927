"""``/api/v1/issues``: list, get, create and replace drafts, preview, test send, publish,
schedule, cancel a schedule, retry failed deliveries, stats and deliveries. Each handler:
parse → a service call of the admin's issue pages (``issues.service``, ``issues.views``,
``issues.proofs``) → response."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from herald.api import pagination
from herald.api.access import Access, operation
from herald.api.idempotency import ApiRoute
from herald.api.issue_shapes import LISTS_HELP, SEGMENT_HELP, IssueBody, IssueOut, issue_json
from herald.api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page, Timestamp
from herald.auth.web import Writer
from herald.deliverability.domain import EventKind
from herald.delivery.domain import DeliveryStatus
from herald.issues.domain import IssueStatus
from herald.issues.proofs import MAX_ADDRESSES, Proofs
from herald.issues.rendering import off_loop
from herald.issues.service import IssueService
from herald.issues.views import SAMPLE_EMAIL, SAMPLE_NAME, IssueViews
from herald.subscriptions.listing import Cursor
from herald.web.state import AppState, State

KIND = "issues"
DELIVERIES = "issue-deliveries"
NEWEST = "newest"
router = APIRouter(prefix="/api/v1/issues", tags=["issues"], route_class=ApiRoute)


class IssueSummary(BaseModel):
    id: uuid.UUID
    title: str
    status: IssueStatus
    lists: list[str] = Field(description=LISTS_HELP)
    segment_id: uuid.UUID | None = Field(description=SEGMENT_HELP)
    scheduled_at: datetime | None
    published_at: datetime | None
    completed_at: datetime | None
    recipients: int | None
    sent: int | None = Field(description="Delivered to the provider, once published.")
    unsent: dict[DeliveryStatus, int] = Field(description="Deliveries not sent, by status.")
    created_at: datetime


class Preview(BaseModel):
    title: str
    preheader: str
    html: str
    text: str
    html_bytes: int
    clipped: bool = Field(description="Over the size at which Gmail clips a message.")


class TestSend(BaseModel):
    model_config = ConfigDict(extra="forbid")

    emails: list[Annotated[str, Field(min_length=3, max_length=320)]] = Field(
        min_length=1, max_length=MAX_ADDRESSES
    )


class TestSent(BaseModel):
    sent_to: list[str]


class Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scheduled_at: Timestamp = Field(description="In the future, with a time zone.")


class Retried(BaseModel):
    retried: int


class Stats(BaseModel):
    issue_id: uuid.UUID
    status: IssueStatus
    recipients: int
    percent: float
    fanning_out: bool
    fanout_error: str | None
    rate_per_min: float | None
    eta_seconds: int | None
    queued: int
    sending: int
    sent: int
    failed: int
    suppressed: int
    reported: dict[EventKind, int] = Field(
        description="Recipients per kind of event the email provider reported (webhooks, "
        "bounce messages): an address that bounced twice counts once."
    )
    bounce_rate: float | None = Field(description="Hard bounces over the recipients sent to.")
    complaint_rate: float | None = Field(
        description="Spam complaints over the recipients sent to (Gmail: keep below 0.001, "
        "never reach 0.003)."
    )


class DeliveryOut(BaseModel):
    id: int
    recipient: str
    subscriber_id: uuid.UUID | None
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    updated_at: datetime


def _service(state: AppState) -> IssueService:
    return IssueService(state.db, state.settings)


def _views(state: AppState) -> IssueViews:
    return IssueViews(state.db, state.settings)


@router.get("", response_model=Page[IssueSummary], **operation(Access.READ, errors=(400,)))
async def list_issues(
    state: State, limit: Limit = DEFAULT_LIMIT, cursor: CursorParam = None
) -> Page[IssueSummary]:
    """Issues, newest first, with their delivery results."""
    after = pagination.decode(state.settings, KIND, cursor, NEWEST) if cursor else None
    before = (after.created_at, uuid.UUID(str(after.id))) if after else None
    page = await _views(state).issue_list(limit, before)
    items = [
        IssueSummary(
            id=row.issue.id,
            title=row.issue.title,
            status=row.issue.status,
            lists=list(row.issue.target.slugs),
            segment_id=row.issue.target.segment.id if row.issue.target.segment else None,
            scheduled_at=row.issue.scheduled_at,
            published_at=row.issue.published_at,
            completed_at=row.issue.completed_at,
            recipients=row.issue.recipients,
            sent=row.sent,
            unsent=row.counts,
            created_at=row.issue.created_at,
        )
        for row in page.rows
    ]
    last = Cursor(*page.next_before) if page.next_before else None
    next_cursor = pagination.encode(state.settings, KIND, last, NEWEST) if last else None
    return Page[IssueSummary](items=items, next_cursor=next_cursor)


@router.post(
    "",
    status_code=201,
    response_model=IssueOut,
    **operation(Access.WRITE, errors=(400, 413, 415), idempotent=True),
)
async def create_issue(body: IssueBody, who: Writer, state: State, response: Response) -> IssueOut:
    """A new draft (its templates compiled and rendered once: a broken one is a 400), to
    `lists` (default: the `default` list) and optionally a segment."""
    content = await off_loop(body.content)  # Markdown and HTML→text: CPU, off the loop
    issue = await _service(state).draft(
        content, who.user_id, body.target(), track=bool(body.tracking)
    )
    response.headers["Location"] = f"{router.prefix}/{issue.id}"
    return issue_json(issue)


@router.get("/{issue_id}", response_model=IssueOut, **operation(Access.READ, errors=(400, 404)))
async def get_issue(issue_id: uuid.UUID, state: State) -> IssueOut:
    return issue_json(await _service(state).get(issue_id))


@router.put(
    "/{issue_id}",
    response_model=IssueOut,
    **operation(Access.WRITE, errors=(400, 404, 409, 413, 415)),
)
async def replace_issue(issue_id: uuid.UUID, body: IssueBody, state: State) -> IssueOut:
    """Replace a draft's (or a scheduled issue's) content, and its target when `lists` or
    `segment_id` is given; 409 once it is published."""
    content = await off_loop(body.content)  # as create_issue
    return issue_json(
        await _service(state).revise(issue_id, content, body.target(), track=body.tracking)
    )


@router.get(
    "/{issue_id}/preview", response_model=Preview, **operation(Access.READ, errors=(400, 404))
)
async def preview_issue(issue_id: uuid.UUID, state: State) -> Preview:
    """The email as a sample subscriber gets it: both parts, in the current design."""
    shown = await _views(state).preview(issue_id, name=SAMPLE_NAME, email=SAMPLE_EMAIL)
    return Preview(
        title=shown.title,
        preheader=shown.preheader,
        html=shown.html,
        text=shown.text,
        html_bytes=shown.html_bytes,
        clipped=shown.clipped,
    )


@router.post(
    "/{issue_id}/test",
    status_code=202,
    response_model=TestSent,
    **operation(Access.WRITE, errors=(400, 404, 415), idempotent=True),
)
async def test_send(issue_id: uuid.UUID, body: TestSend, state: State) -> TestSent:
    """Queue a copy (subject prefixed `[TEST]`) to each address, at most 10."""
    sent = await Proofs(state.db, state.settings).send(issue_id, body.emails)
    return TestSent(sent_to=sent)


@router.post(
    "/{issue_id}/publish",
    status_code=202,
    response_model=IssueOut,
    **operation(Access.WRITE, errors=(400, 404, 409), idempotent=True),
)
async def publish_issue(issue_id: uuid.UUID, state: State) -> IssueOut:
    """Publish now to the confirmed readers of its lists (and segment); the workers queue
    the deliveries. A segment whose filter cannot be used is a 400."""
    return issue_json(await _service(state).publish_now(issue_id))


@router.post(
    "/{issue_id}/schedule",
    response_model=IssueOut,
    **operation(Access.WRITE, errors=(400, 404, 409, 415), idempotent=True),
)
async def schedule_issue(issue_id: uuid.UUID, body: Schedule, state: State) -> IssueOut:
    return issue_json(await _service(state).schedule_at(issue_id, body.scheduled_at))


@router.post(
    "/{issue_id}/cancel",
    response_model=IssueOut,
    **operation(Access.WRITE, errors=(400, 404, 409), idempotent=True),
)
async def cancel_schedule(issue_id: uuid.UUID, state: State) -> IssueOut:
    """A scheduled issue back to draft; 409 for any other."""
    return issue_json(await _service(state).unschedule(issue_id))


@router.post(
    "/{issue_id}/retry-failed",
    response_model=Retried,
    **operation(Access.WRITE, errors=(400, 404), idempotent=True),
)
async def retry_failed(issue_id: uuid.UUID, state: State) -> Retried:
    """Queue the issue's failed deliveries again."""
    return Retried(retried=await _service(state).retry_failed(issue_id))


@router.get("/{issue_id}/stats", response_model=Stats, **operation(Access.READ, errors=(400, 404)))
async def issue_stats(issue_id: uuid.UUID, state: State) -> Stats:
    progress, feedback = await _views(state).stats(issue_id)
    return Stats.model_validate(
        {
            **progress.as_json(),
            "reported": feedback.counts,
            "bounce_rate": feedback.bounce_rate,
            "complaint_rate": feedback.complaint_rate,
        }
    )


@router.get(
    "/{issue_id}/deliveries",
    response_model=Page[DeliveryOut],
    **operation(Access.READ, errors=(400, 404)),
)
async def issue_deliveries(
    issue_id: uuid.UUID,
    state: State,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[DeliveryOut]:
    """The issue's deliveries, latest first (of one status, or all)."""
    order = status.value if status else "all"
    before = pagination.decode_id(state.settings, DELIVERIES, cursor, order) if cursor else None
    page = await _views(state).deliveries(issue_id, status, limit, before)
    items = [
        DeliveryOut(
            id=row.id,
            recipient=row.recipient,
            subscriber_id=row.subscriber_id,
            status=row.status,
            attempts=row.attempts,
            last_error=row.last_error,
            sent_at=row.sent_at,
            updated_at=row.updated_at,
        )
        for row in page.rows
    ]
    next_cursor = (
        pagination.encode_id(state.settings, DELIVERIES, page.next_before, order)
        if page.next_before
        else None
    )
    return Page[DeliveryOut](items=items, next_cursor=next_cursor)
