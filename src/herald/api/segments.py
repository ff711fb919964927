"""``/api/v1/segments``: saved segments (list, get, create, replace, delete, preview) and
the subscribers a segment selects (keyset pages). Each handler: parse → one call of
``segments.service`` → response. The filter's JSON is described in docs/API.md."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from herald.api import pagination
from herald.api.access import Access, operation
from herald.api.idempotency import ApiRoute
from herald.api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page
from herald.auth.web import Writer
from herald.segments.repository import Member, Segment
from herald.segments.saved import MAX_NAME, to_json
from herald.segments.service import SegmentService
from herald.subscriptions.domain import SubscriptionStatus
from herald.subscriptions.listing import Cursor
from herald.web.state import AppState, State

KIND = "segments"
MEMBERS = "segment-members"
OLDEST = "oldest"
NEWEST = "newest"
router = APIRouter(prefix="/api/v1/segments", tags=["segments"], route_class=ApiRoute)

FILTER_DOC = (
    "A filter: `{all|any: [...]}`, `{not: ...}`, `{status: [...]}`, "
    '`{list: "slug", status: "confirmed"}`, `{attribute, op, type, value}`, '
    "`{created_at: {before|after: time | within_days: n}}`, `{email_domain: ...}` "
    "(docs/API.md, Segments)."
)


class SegmentOut(BaseModel):
    id: uuid.UUID
    name: str
    filter: dict[str, Any]
    created_at: datetime
    updated_at: datetime


class SegmentBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME * 4)
    filter: dict[str, Any] = Field(description=FILTER_DOC)


class SegmentChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME * 4)
    filter: dict[str, Any] | None = Field(default=None, description=FILTER_DOC)


class FilterBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    filter: dict[str, Any] = Field(description=FILTER_DOC)


# Read from a segments.Member, field by field, as api.subscribers.SubscriberDetail.
class SegmentMember(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    status: SubscriptionStatus
    created_at: datetime
    confirmed_at: datetime | None
    attributes: dict[str, Any]


class PreviewOut(BaseModel):
    count: int | None = Field(description="Null when counting took longer than 5 seconds.")
    sample: list[SegmentMember] | None = Field(
        description="The newest matching subscribers (up to 10); null when too slow."
    )


def segment_json(segment: Segment) -> SegmentOut:
    return SegmentOut(
        id=segment.id,
        name=segment.name,
        filter=to_json(segment.filter),
        created_at=segment.created_at,
        updated_at=segment.updated_at,
    )


def member_json(member: Member) -> SegmentMember:
    return SegmentMember.model_validate(member)


def _service(state: AppState) -> SegmentService:
    return SegmentService(state.db)


def _after(state: AppState, kind: str, cursor: str | None, order: str) -> Any:
    if not cursor:
        return None
    found = pagination.decode(state.settings, kind, cursor, order)
    assert isinstance(found.id, uuid.UUID)
    return (found.created_at, found.id)


@router.get("", response_model=Page[SegmentOut], **operation(Access.READ, errors=(400,)))
async def list_segments(
    state: State, limit: Limit = DEFAULT_LIMIT, cursor: CursorParam = None
) -> Page[SegmentOut]:
    """Saved segments, oldest first."""
    rows, more = await _service(state).page(_after(state, KIND, cursor, OLDEST), limit)
    last = Cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return Page[SegmentOut](
        items=[segment_json(row) for row in rows],
        next_cursor=pagination.encode(state.settings, KIND, last, OLDEST) if last else None,
    )


@router.post(
    "",
    status_code=201,
    response_model=SegmentOut,
    **operation(Access.WRITE, errors=(400, 409, 415), idempotent=True),
)
async def create_segment(
    body: SegmentBody, who: Writer, state: State, response: Response
) -> SegmentOut:
    """A new segment; 409 when the name is taken, 400 naming the problem in the filter."""
    segment = await _service(state).create(name=body.name, filter=body.filter, by=who.user_id)
    response.headers["Location"] = f"{router.prefix}/{segment.id}"
    return segment_json(segment)


@router.post(
    "/preview",
    response_model=PreviewOut,
    **operation(Access.READ, errors=(400, 415), idempotent=True),
)
async def preview_filter(body: FilterBody, state: State) -> PreviewOut:
    """How many subscribers a filter selects now, and the newest of them (nothing saved)."""
    found = await _service(state).preview_json(body.filter)
    return PreviewOut(
        count=found.count,
        sample=[member_json(m) for m in found.sample] if found.sample is not None else None,
    )


@router.get("/{segment_id}", response_model=SegmentOut, **operation(Access.READ, errors=(400, 404)))
async def get_segment(segment_id: uuid.UUID, state: State) -> SegmentOut:
    return segment_json(await _service(state).get(segment_id))


@router.patch(
    "/{segment_id}",
    response_model=SegmentOut,
    **operation(Access.WRITE, errors=(400, 404, 409, 415)),
)
async def update_segment(segment_id: uuid.UUID, body: SegmentChange, state: State) -> SegmentOut:
    """Rename and/or change the filter (what is left out stays)."""
    segment = await _service(state).update(segment_id, name=body.name, filter=body.filter)
    return segment_json(segment)


@router.delete("/{segment_id}", status_code=204, **operation(Access.WRITE, errors=(400, 404, 409)))
async def delete_segment(segment_id: uuid.UUID, state: State) -> Response:
    """409 while an issue targets the segment."""
    await _service(state).delete(segment_id)
    return Response(status_code=204)


@router.get(
    "/{segment_id}/subscribers",
    response_model=Page[SegmentMember],
    **operation(Access.READ, errors=(400, 404)),
)
async def segment_subscribers(
    segment_id: uuid.UUID, state: State, limit: Limit = DEFAULT_LIMIT, cursor: CursorParam = None
) -> Page[SegmentMember]:
    """The subscribers the segment selects now, newest first, with their attributes."""
    after = _after(state, MEMBERS, cursor, NEWEST)
    rows, more = await _service(state).members(segment_id, after, limit)
    last = Cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return Page[SegmentMember](
        items=[member_json(row) for row in rows],
        next_cursor=pagination.encode(state.settings, MEMBERS, last, NEWEST) if last else None,
    )
