"""``/api/v1/subscribers``: list (keyset pages, filters, search), get, create (double
opt-in), rename and set attributes, unsubscribe. Each handler: parse → one service call →
response; the services are the admin's (``subscriptions.directory``), the public sign-up's
(``subscriptions.service``) and the attributes' (``segments.service``)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from herald.api import pagination
from herald.api.access import Access, operation
from herald.api.idempotency import ApiRoute
from herald.api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page, Timestamp
from herald.core.errors import ValidationError
from herald.segments.repository import Member
from herald.segments.service import Attributes, SegmentService
from herald.subscriptions.directory import SubscriberDirectory
from herald.subscriptions.domain import (
    MAX_NAME_CODE_POINTS,
    NewSubscriber,
    SubscriberName,
    SubscriptionStatus,
)
from herald.subscriptions.listing import (
    MAX_QUERY_LENGTH,
    Cursor,
    ListFilter,
    Match,
    Sort,
    Tab,
    Window,
)
from herald.subscriptions.repository import SubscriptionView
from herald.subscriptions.service import SubscriptionService
from herald.web.state import AppState, State

KIND = "subscribers"
router = APIRouter(prefix="/api/v1/subscribers", tags=["subscribers"], route_class=ApiRoute)

NO_NUL = r"^[^\x00]*$"


# Read from a subscriptions.SubscriptionView or a segments.Member, field by field.
class Subscriber(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    name: str
    status: SubscriptionStatus
    created_at: datetime
    confirmed_at: datetime | None


class NewSubscriberBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(
        min_length=3, max_length=320, description="Normalised and checked like the form's."
    )
    name: str = Field(min_length=1, max_length=4 * MAX_NAME_CODE_POINTS)


class SubscriberDetail(Subscriber):
    attributes: dict[str, Any] = Field(description="Free-form JSON attributes (docs/API.md).")


class SubscriberChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=4 * MAX_NAME_CODE_POINTS)
    attributes: dict[str, Any] | None = Field(
        default=None,
        description="Merged at the top level: each key given replaces its value, `null` "
        "deletes the key, keys left out stay.",
    )


def subscriber_json(view: SubscriptionView | Member) -> Subscriber:
    return Subscriber.model_validate(view)


def detail_json(member: Member) -> SubscriberDetail:
    return SubscriberDetail.model_validate(member)


def _directory(state: AppState) -> SubscriberDirectory:
    return SubscriberDirectory(state.db, state.settings)


@router.get("", response_model=Page[Subscriber], **operation(Access.READ, errors=(400, 404)))
async def list_subscribers(
    state: State,
    status: SubscriptionStatus | None = None,
    segment: Annotated[
        uuid.UUID | None,
        Query(
            description="Only those the saved segment selects now (newest first; with `status`, "
            "not with `search`, `order=oldest` or `created_*`: put those in the segment)."
        ),
    ] = None,
    search: Annotated[
        str,
        Query(
            max_length=MAX_QUERY_LENGTH,
            pattern=NO_NUL,
            description="Subscribers whose email or name contains this text (any case).",
        ),
    ] = "",
    created_after: Annotated[
        Timestamp | None, Query(description="Signed up after this time (with a time zone).")
    ] = None,
    created_before: Annotated[
        Timestamp | None, Query(description="Signed up before this time (with a time zone).")
    ] = None,
    order: Sort = Sort.NEWEST,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[Subscriber]:
    """One page of subscribers, newest first (or ``order=oldest``); ``next_cursor`` leads
    to the next one."""
    if segment is not None:
        if search.strip() or order is not Sort.NEWEST or created_after or created_before:
            raise ValidationError(
                "segment cannot be combined with search, order=oldest, created_after or "
                "created_before: put those conditions in the segment",
                field="segment",
            )
        start = pagination.decode(state.settings, KIND, cursor, order) if cursor else None
        found, more = await SegmentService(state.db).members(
            segment,
            (start.created_at, uuid.UUID(str(start.id))) if start else None,
            limit,
            status=status.value if status else None,
        )
        end = Cursor(found[-1].created_at, found[-1].id) if more and found else None
        return Page[Subscriber](
            items=[subscriber_json(m) for m in found],
            next_cursor=pagination.encode(state.settings, KIND, end, order) if end else None,
        )
    where = ListFilter(
        Tab(status.value) if status else Tab.ALL, search.strip(), Match.SUBSTRING, order
    )
    after = pagination.decode(state.settings, KIND, cursor, order) if cursor else None
    window = Window(created_after, created_before)
    rows, more = await _directory(state).find(where, after=after, limit=limit, window=window)
    last = Cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return Page[Subscriber](
        items=[subscriber_json(row) for row in rows],
        next_cursor=pagination.encode(state.settings, KIND, last, order) if last else None,
    )


@router.post(
    "",
    status_code=201,
    response_model=Subscriber,
    **operation(Access.WRITE, errors=(400, 409, 415), idempotent=True),
)
async def create_subscriber(
    body: NewSubscriberBody, state: State, response: Response
) -> Subscriber:
    """A new subscriber, pending until they follow the link of the confirmation email
    sent now (double opt-in). 409 when the address is already known."""
    new = NewSubscriber.parse(name=body.name, email=body.email)
    view = await SubscriptionService(state.db, state.settings).add(new)
    response.headers["Location"] = f"{router.prefix}/{view.id}"
    return subscriber_json(view)


@router.get(
    "/{subscriber_id}",
    response_model=SubscriberDetail,
    **operation(Access.READ, errors=(400, 404)),
)
async def get_subscriber(subscriber_id: uuid.UUID, state: State) -> SubscriberDetail:
    return detail_json(await Attributes(state.db).member(subscriber_id))


@router.patch(
    "/{subscriber_id}",
    response_model=SubscriberDetail,
    **operation(Access.WRITE, errors=(400, 404, 415)),
)
async def update_subscriber(
    subscriber_id: uuid.UUID, body: SubscriberChange, state: State
) -> SubscriberDetail:
    """Change the name (the address is the subscriber: sign up the new one instead) and/or
    the attributes (merged: ``{"city": "Lyon", "old": null}`` sets one, deletes the other)."""
    name = SubscriberName.parse(body.name) if body.name is not None else None
    # The attributes first: a change they refuse (a 400, also when the merge is too large)
    # must leave the name as it was, and the rename can then fail only with a 404.
    attributes = Attributes(state.db)
    if body.attributes is not None:
        member = await attributes.change(subscriber_id, body.attributes)
    else:
        member = await attributes.member(subscriber_id)
    if name is not None:
        renamed = await _directory(state).rename(subscriber_id, name)
        member = dataclasses.replace(member, name=renamed.name)
    return detail_json(member)


@router.delete(
    "/{subscriber_id}",
    response_model=Subscriber,
    **operation(Access.WRITE, errors=(400, 404)),
)
async def unsubscribe_subscriber(subscriber_id: uuid.UUID, state: State) -> Subscriber:
    """Unsubscribe (idempotent): no more emails; the record stays, as after the
    unsubscribe link."""
    return subscriber_json(await _directory(state).unsubscribe(subscriber_id))


class Erased(BaseModel):
    id: uuid.UUID
    erased: bool = Field(description="True: gone, the address kept only as an erased key.")


@router.post(
    "/{subscriber_id}/erase",
    response_model=Erased,
    **operation(Access.WRITE, errors=(400, 404), idempotent=True),
)
async def erase_subscriber(subscriber_id: uuid.UUID, state: State) -> Erased:
    """Erase (a reader's request to be forgotten): the subscriber is deleted with their
    lists and consent records, their address leaves the delivery history, and it is kept
    only as an ``erased`` suppression key, so no import, sign-up or API create brings it
    back. ``404`` for an unknown (or already erased) id."""
    await _directory(state).erase(subscriber_id, source="api")
    return Erased(id=subscriber_id, erased=True)
