"""Segment pages (editors and admins): the list, and the builder — rows of conditions with
an all/any switch — where adding or removing a row, previewing (how many subscribers match
and the newest of them) and saving are submits of one form, so it all works without
JavaScript. A filter the rows cannot show is edited as JSON on the same page.

A refused filter re-renders the builder as it was, with a 400 and the message naming the
condition (a redirect would lose what was typed).
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.auth.web import CurrentSession, require_session
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.segments.builder import FIELD_LABELS, OPS, TYPES, Builder, Field, describe
from herald.segments.domain import MAX_CONDITIONS
from herald.segments.saved import to_json
from herald.segments.service import TOO_SLOW, Preview, SegmentService
from herald.subscriptions.listing import Cursor
from herald.web import csrf, flash
from herald.web.errors import form_errors
from herald.web.forms import read_form
from herald.web.json_body import parse_json
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])

LIST = "/admin/segments"
MAX_FIELDS = MAX_CONDITIONS * 5 + 20
PAGE_SIZE = 50
REMOVE = re.compile(r"remove:([0-9]{1,4})")  # the button of row n: action=remove:n
STATUS_CHOICES = [
    ("confirmed", "confirmed"),
    ("pending_confirmation", "pending"),
    ("unsubscribed", "unsubscribed"),
]


def _service(state: State) -> SegmentService:
    return SegmentService(state.db)


@router.get("/segments", response_class=HTMLResponse)
async def list_segments(request: Request, state: State) -> Response:
    segments = await _service(state).all()
    summaries = {s.id: describe(to_json(s.filter)) for s in segments}
    return page(request, "admin/segments.html", segments=segments, summaries=summaries)


@router.get("/segments/new", response_class=HTMLResponse)
async def new_segment(request: Request, state: State) -> Response:
    builder = Builder(rows=()).with_row(Field.STATUS)
    return await _builder_page(request, state, builder, None)


@router.get("/segments/{segment_id}", response_class=HTMLResponse)
async def show_segment(request: Request, state: State, segment_id: uuid.UUID) -> Response:
    service = _service(state)
    segment = await service.get(segment_id)
    builder = Builder.from_filter(segment.name, to_json(segment.filter))
    preview = await service.preview(segment.filter)
    return await _builder_page(request, state, builder, segment_id, preview=preview)


@router.get("/segments/{segment_id}/subscribers", response_class=HTMLResponse)
async def segment_subscribers(
    request: Request,
    state: State,
    segment_id: uuid.UUID,
    after: Annotated[str, Query(max_length=80)] = "",
) -> Response:
    """Everyone the segment selects now, newest first, a keyset page at a time."""
    start = Cursor.parse(after) if after else None
    service = _service(state)
    segment = await service.get(segment_id)
    members, more = await service.matching(  # the segment read once, not again by members()
        segment.filter, (start.created_at, uuid.UUID(str(start.id))) if start else None, PAGE_SIZE
    )
    older = str(Cursor(members[-1].created_at, members[-1].id)) if more and members else ""
    return page(
        request,
        "admin/segment_subscribers.html",
        segment=segment,
        summary=describe(to_json(segment.filter)),
        members=members,
        older=older,
        paged=bool(after),
    )


@router.post("/segments/new")
async def post_new(request: Request, state: State, session: CurrentSession) -> Response:
    return await _post(request, state, None, session.user_id)


@router.post("/segments/{segment_id}")
async def post_segment(
    request: Request, state: State, session: CurrentSession, segment_id: uuid.UUID
) -> Response:
    return await _post(request, state, segment_id, session.user_id)


@router.post("/segments/{segment_id}/delete")
async def delete_segment(request: Request, state: State, segment_id: uuid.UUID) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    with form_errors(f"{LIST}/{segment_id}", Conflict, NotFound):
        await _service(state).delete(segment_id)
    return flash.redirect(LIST, state.settings, "The segment has been deleted.")


async def _post(
    request: Request, state: State, segment_id: uuid.UUID | None, user_id: uuid.UUID
) -> Response:
    fields = await read_form(request, max_fields=MAX_FIELDS)
    csrf.check(request, state.settings, fields.get(csrf.FORM_FIELD))
    action = fields.get("action", "preview")
    try:
        builder = Builder.from_form(fields)
    except ValidationError as exc:
        return await _builder_page(request, state, Builder(), segment_id, error=exc.message)
    service = _service(state)
    try:
        if action == "add":
            return await _builder_page(
                request, state, builder.with_row(fields.get("new_field", "")), segment_id
            )
        if removed := REMOVE.fullmatch(action):  # ASCII digits: int() of "²" would raise
            shown = builder.without_row(int(removed.group(1)))
            return await _builder_page(request, state, shown, segment_id)
        if action == "json" or builder.mode == "json":
            builder, filter_json = _from_json(builder)
        else:
            filter_json = builder.filter_json()
            builder = Builder.from_filter(builder.name, filter_json)
        if action != "save":
            preview = await service.preview_json(filter_json)
            return await _builder_page(request, state, builder, segment_id, preview=preview)
        if segment_id is None:
            saved = await service.create(name=builder.name, filter=filter_json, by=user_id)
        else:
            saved = await service.update(segment_id, name=builder.name, filter=filter_json)
    except (ValidationError, Conflict) as exc:
        return await _builder_page(
            request, state, builder, segment_id, error=exc.message, status_code=400
        )
    return flash.redirect(f"{LIST}/{saved.id}", state.settings, "The segment has been saved.")


def _from_json(builder: Builder) -> tuple[Builder, object]:
    """The builder showing the filter written as JSON (as rows if it can), and the filter."""
    if not builder.json_text.strip():
        raise ValidationError("Write the filter as JSON", field="json_text")
    raw = parse_json(builder.json_text.encode())
    return Builder.from_filter(builder.name, raw), raw


async def _builder_page(
    request: Request,
    state: State,
    builder: Builder,
    segment_id: uuid.UUID | None,
    *,
    preview: Preview | None = None,
    error: str = "",
    status_code: int = 200,
) -> Response:
    return page(
        request,
        "admin/segment.html",
        status_code=status_code,
        builder=builder,
        segment_id=segment_id,
        action_url=f"{LIST}/{segment_id}" if segment_id else f"{LIST}/new",
        preview=preview,
        too_slow=TOO_SLOW,
        error=error,
        fields=FIELD_LABELS,
        ops=OPS,
        types=TYPES,
        statuses=STATUS_CHOICES,
        lists=await _service(state).list_choices(),
        max_conditions=MAX_CONDITIONS,
    )
