"""``/api/v1/lists``: list, create, get, change and delete lists; a list's members (keyset
pages by subscriber id, filtered by membership status), add a subscriber to a list and
remove one. Each handler: parse → one call of ``lists.service`` → response."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from herald.api import pagination
from herald.api.access import Access, operation
from herald.api.idempotency import ApiRoute
from herald.api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page
from herald.auth.service import Principal
from herald.auth.web import writer
from herald.lists.domain import (
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_SLUG,
    SLUG_PATTERN,
    ListChange,
    ListDraft,
    Member,
    MemberStatus,
    NewsList,
    OptIn,
    Visibility,
    api_source,
)
from herald.lists.service import ListService
from herald.subscriptions.listing import Cursor
from herald.web.state import AppState, State

KIND = "lists"
MEMBERS = "list-members"
OLDEST = "oldest"
BY_ID = "subscriber-id"
router = APIRouter(prefix="/api/v1/lists", tags=["lists"], route_class=ApiRoute)

NO_NUL = r"^[^\x00]*$"
SLUG = f"^{SLUG_PATTERN}$"
# Room for what the service trims and normalises; it says precisely what is wrong.
Name = Annotated[str, Field(min_length=1, max_length=4 * MAX_NAME, pattern=NO_NUL)]
Slug = Annotated[str, Field(min_length=1, max_length=MAX_SLUG, pattern=SLUG)]
Description = Annotated[str, Field(max_length=2 * MAX_DESCRIPTION, pattern=NO_NUL)]


class MemberCountsOut(BaseModel):
    pending_confirmation: int
    confirmed: int
    unsubscribed: int


class ListOut(BaseModel):
    id: uuid.UUID
    slug: str
    name: str
    description: str
    visibility: Visibility
    opt_in: OptIn
    is_default: bool = Field(description="The list every sign-up without a list joins.")
    members: MemberCountsOut = Field(description="Memberships by status.")
    created_at: datetime
    updated_at: datetime


class NewListBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    slug: Slug | None = Field(default=None, description="Made from the name when left out.")
    description: Description = ""
    visibility: Visibility = Visibility.PUBLIC
    opt_in: OptIn = OptIn.DOUBLE


class ListChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    slug: Slug | None = Field(default=None, description="The default list's cannot change.")
    description: Description | None = None
    visibility: Visibility | None = None
    opt_in: OptIn | None = None


class MemberOut(BaseModel):
    subscriber_id: uuid.UUID
    email: str
    name: str
    status: MemberStatus = Field(description="The membership's status in this list.")
    subscriber_status: str = Field(description="The address's: confirmed once it was proven.")
    mailed: bool = Field(description="Issues to this list reach them (both are confirmed).")
    source: str = Field(description="Where the consent came from: a form, an import, the API.")
    consent_ip: str | None
    consent_user_agent: str | None
    created_at: datetime
    confirmed_at: datetime | None
    unsubscribed_at: datetime | None


class NewMemberBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscriber_id: uuid.UUID
    status: Literal["confirmed", "pending_confirmation"] = Field(
        description="confirmed: you attest the reader's consent to this list. No email is sent."
    )


def list_json(news_list: NewsList) -> ListOut:
    counts = news_list.counts
    return ListOut(
        id=news_list.id,
        slug=news_list.slug,
        name=news_list.name,
        description=news_list.description,
        visibility=news_list.visibility,
        opt_in=news_list.opt_in,
        is_default=news_list.is_default,
        members=MemberCountsOut(
            pending_confirmation=counts.pending,
            confirmed=counts.confirmed,
            unsubscribed=counts.unsubscribed,
        ),
        created_at=news_list.created_at,
        updated_at=news_list.updated_at,
    )


def member_json(member: Member) -> MemberOut:
    return MemberOut(
        subscriber_id=member.subscriber_id,
        email=member.email,
        name=member.name,
        status=member.status,
        subscriber_status=member.subscriber_status,
        mailed=member.mailed,
        source=member.source,
        consent_ip=member.consent_ip,
        consent_user_agent=member.consent_user_agent,
        created_at=member.created_at,
        confirmed_at=member.confirmed_at,
        unsubscribed_at=member.unsubscribed_at,
    )


def _service(state: AppState) -> ListService:
    return ListService(state.db, state.settings)


@router.get("", response_model=Page[ListOut], **operation(Access.READ, errors=(400,)))
async def list_lists(
    state: State, limit: Limit = DEFAULT_LIMIT, cursor: CursorParam = None
) -> Page[ListOut]:
    """Every list, oldest first (the default list leads), with its member counts."""
    after = pagination.decode(state.settings, KIND, cursor, OLDEST) if cursor else None
    rows, more = await _service(state).page(
        (after.created_at, uuid.UUID(str(after.id))) if after else None, limit
    )
    last = Cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
    return Page[ListOut](
        items=[list_json(row) for row in rows],
        next_cursor=pagination.encode(state.settings, KIND, last, OLDEST) if last else None,
    )


@router.post(
    "",
    status_code=201,
    response_model=ListOut,
    **operation(Access.WRITE, errors=(400, 409, 415), idempotent=True),
)
async def create_list(body: NewListBody, state: State, response: Response) -> ListOut:
    """A new list; `409` when its slug is taken."""
    draft = ListDraft.parse(
        name=body.name,
        slug=body.slug or "",
        description=body.description,
        visibility=body.visibility.value,
        opt_in=body.opt_in.value,
    )
    created = await _service(state).create(draft)
    response.headers["Location"] = f"{router.prefix}/{created.id}"
    return list_json(created)


@router.get("/{list_id}", response_model=ListOut, **operation(Access.READ, errors=(400, 404)))
async def get_list(list_id: uuid.UUID, state: State) -> ListOut:
    return list_json(await _service(state).get(list_id))


@router.patch(
    "/{list_id}", response_model=ListOut, **operation(Access.WRITE, errors=(400, 404, 409, 415))
)
async def update_list(list_id: uuid.UUID, body: ListChangeBody, state: State) -> ListOut:
    """Change what is given; `409` for a slug another list has."""
    change = ListChange.parse(
        name=body.name,
        slug=body.slug,
        description=body.description,
        visibility=body.visibility.value if body.visibility else None,
        opt_in=body.opt_in.value if body.opt_in else None,
    )
    return list_json(await _service(state).update(list_id, change))


@router.delete(
    "/{list_id}", response_model=ListOut, **operation(Access.WRITE, errors=(400, 404, 409))
)
async def delete_list(list_id: uuid.UUID, state: State) -> ListOut:
    """Delete the list and its memberships (the subscribers stay); answers the list as it
    was. `409` for the default list and for a list an issue targets."""
    return list_json((await _service(state).delete(list_id, confirmed=True)).news_list)


@router.get(
    "/{list_id}/members",
    response_model=Page[MemberOut],
    **operation(Access.READ, errors=(400, 404)),
)
async def list_members(
    list_id: uuid.UUID,
    state: State,
    status: MemberStatus | None = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[MemberOut]:
    """The list's members in subscriber id order, of one membership status or all."""
    order = f"{BY_ID}:{status.value if status else 'all'}:{list_id}"
    after = pagination.decode_uuid(state.settings, MEMBERS, cursor, order) if cursor else None
    rows, more = await _service(state).members(list_id, status=status, after=after, limit=limit)
    last = rows[-1].subscriber_id if more and rows else None
    return Page[MemberOut](
        items=[member_json(row) for row in rows],
        next_cursor=pagination.encode_uuid(state.settings, MEMBERS, last, order) if last else None,
    )


@router.post(
    "/{list_id}/members",
    response_model=MemberOut,
    **operation(Access.WRITE, errors=(400, 404, 409, 415), idempotent=True),
)
async def add_member(
    list_id: uuid.UUID,
    body: NewMemberBody,
    state: State,
    who: Annotated[Principal, Depends(writer)],
) -> MemberOut:
    """Add a subscriber to the list, or confirm a pending member (a confirmed one stays
    so); answers the membership. The consent record says `api:<key name>`. `409` for an
    address on the suppression list or unsubscribed from everything, and for a reader
    who left this list (only they can join again)."""
    change = await _service(state).add_member(
        list_id,
        body.subscriber_id,
        MemberStatus(body.status),
        api_source(who.key_name, who.username),
    )
    return member_json(change.member)


@router.delete(
    "/{list_id}/members/{subscriber_id}",
    response_model=MemberOut,
    **operation(Access.WRITE, errors=(400, 404)),
)
async def remove_member(list_id: uuid.UUID, subscriber_id: uuid.UUID, state: State) -> MemberOut:
    """Unsubscribe the member from this list (idempotent); their other lists stay."""
    return member_json(await _service(state).remove_member(list_id, subscriber_id))
