"""``/api/v1/suppressions``: the suppression list — list (keyset pages, newest first; by
reason, by a text of the kept address or a whole address), add (which unsubscribes the
address at once), remove (admins: an operator's decision; never an erasure). Each
handler: parse → one call of ``suppressions.service`` → response."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from herald.api import pagination
from herald.api.access import Access, operation
from herald.api.idempotency import ApiRoute
from herald.api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page
from herald.auth.service import Principal
from herald.auth.web import writer
from herald.suppressions.domain import MAX_QUERY_LENGTH, Cursor, Filter, Reason, Suppression
from herald.suppressions.service import SuppressionList
from herald.web.state import AppState, State

KIND = "suppressions"
NEWEST = "newest"
router = APIRouter(prefix="/api/v1/suppressions", tags=["suppressions"], route_class=ApiRoute)


class SuppressionOut(BaseModel):
    email: str | None = Field(description="Null once erased: only the address's key is kept.")
    reason: Reason
    source: str = Field(description="Who or what added it: admin:<user>, api:<key>, …")
    created_at: datetime
    removable: bool = Field(description="False for an erasure, which cannot be lifted.")


class AddedSuppression(SuppressionOut):
    created: bool = Field(description="False when the address was already suppressed.")


class NewSuppression(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320, description="Normalised like a sign-up's.")
    reason: Literal["manual", "hard_bounce", "complaint"] = "manual"


def suppression_json(row: Suppression) -> SuppressionOut:
    return SuppressionOut(
        email=row.email,
        reason=row.reason,
        source=row.source,
        created_at=row.created_at,
        removable=row.removable,
    )


def _list(state: AppState) -> SuppressionList:
    return SuppressionList(state.db)


@router.get("", response_model=Page[SuppressionOut], **operation(Access.READ, errors=(400,)))
async def list_suppressions(
    state: State,
    reason: Reason | None = None,
    search: Annotated[
        str,
        Query(
            max_length=MAX_QUERY_LENGTH,
            pattern=r"^[^\x00]*$",
            description="Rows whose kept address contains this text (any case), or the row "
            "of this whole address (also an erased one).",
        ),
    ] = "",
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[SuppressionOut]:
    """One page of the suppression list, newest first; ``next_cursor`` leads on."""
    where = Filter(reason, search.strip())
    after = (
        Cursor.parse(pagination.decode_text(state.settings, KIND, cursor, NEWEST), field="cursor")
        if cursor
        else None
    )
    rows, more = await _list(state).find(where, after=after, limit=limit)
    last = str(Cursor(rows[-1].created_at, rows[-1].key)) if more and rows else None
    return Page[SuppressionOut](
        items=[suppression_json(row) for row in rows],
        next_cursor=pagination.encode_text(state.settings, KIND, last, NEWEST) if last else None,
    )


@router.post(
    "",
    response_model=AddedSuppression,
    **operation(Access.WRITE, errors=(400, 415), idempotent=True),
)
async def add_suppression(
    body: NewSuppression,
    who: Annotated[Principal, Depends(writer)],
    state: State,
) -> AddedSuppression:
    """Suppress an address: its subscription (if any) is unsubscribed from every list at
    once, and no import, sign-up or issue mails it again. Idempotent: an address already
    suppressed keeps its row (``created`` false)."""
    row, created = await _list(state).add(
        body.email, Reason(body.reason), source=f"api:{who.key_name or who.username}"
    )
    return AddedSuppression(**suppression_json(row).model_dump(), created=created)


@router.delete(
    "/{email}",
    response_model=SuppressionOut,
    **operation(Access.ADMIN_WRITE, errors=(400, 404, 409)),
)
async def remove_suppression(
    email: Annotated[str, Path(min_length=3, max_length=320)], state: State
) -> SuppressionOut:
    """Lift an address's suppression (it may be mailed again once it signs up again; nobody
    is re-subscribed); the row removed. ``404`` when it is not suppressed, ``409`` for an
    erasure (the reader asked to be forgotten)."""
    return suppression_json(await _list(state).remove(email))
