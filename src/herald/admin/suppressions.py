"""``/admin/suppressions``: the suppression list — counts by reason, search, keyset pages;
add an address by hand (editors too: it only stops mail), remove one (admins only: an
operator's decision to let an address be mailed again; never an erasure). Each handler:
parse → one service call → response."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.auth.web import CurrentSession, require_admin, require_session
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.suppressions.domain import ADDABLE, Filter, Reason
from herald.suppressions.service import SuppressionList
from herald.web import csrf, flash
from herald.web.errors import form_errors
from herald.web.forms import read_form
from herald.web.pages import page
from herald.web.state import AppState, State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])

LIST = "/admin/suppressions"


def list_url(where: Filter, after: str = "") -> str:
    params = {**where.params(), **({"after": after} if after else {})}
    return f"{LIST}?{urlencode(params)}" if params else LIST


def _suppressions(state: AppState) -> SuppressionList:
    return SuppressionList(state.db)


@router.get("/suppressions", response_class=HTMLResponse)
async def suppressions(
    request: Request,
    state: State,
    session: CurrentSession,
    reason: Annotated[str, Query(max_length=40)] = "",
    q: Annotated[str, Query(max_length=400)] = "",
    after: Annotated[str, Query(max_length=200)] = "",
) -> Response:
    with form_errors(LIST, ValidationError):
        where = Filter.parse(reason=reason, q=q)
        found = await _suppressions(state).page(where, after=after)
    return page(
        request,
        "admin/suppressions.html",
        found=found,
        where=where,
        addable=ADDABLE,
        tabs=[(None, "All", found.total, list_url(Filter(None, where.query)))]
        + [(r, r.label, found.counts[r], list_url(Filter(r, where.query))) for r in Reason],
        older_url=list_url(where, str(found.older)) if found.older else "",
        first_url=list_url(where) if after else "",
        clear_url=list_url(Filter(where.reason, "")),
        can_remove=session.is_admin,
    )


@router.post("/suppressions")
async def add(request: Request, state: State, session: CurrentSession) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    with form_errors(LIST, ValidationError):
        reason = Reason.parse(form.get("reason", Reason.MANUAL.value))
        if reason not in ADDABLE:
            raise ValidationError("choose a reason an operator can give", field="reason")
        row, created = await _suppressions(state).add(
            form.get("email", ""), reason, source=f"admin:{session.username}"
        )
    done = "added to the suppression list" if created else "was already on the suppression list"
    return flash.redirect(LIST, state.settings, f"{row.email or 'The address'} {done}.")


@router.post("/suppressions/remove", dependencies=[Depends(require_admin)])
async def remove(request: Request, state: State) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    with form_errors(LIST, ValidationError, NotFound, Conflict):
        row = await _suppressions(state).remove(form.get("email", ""))
    return flash.redirect(
        LIST,
        state.settings,
        f"{row.email} was removed from the suppression list: it may be mailed again once it "
        "signs up again.",
    )
