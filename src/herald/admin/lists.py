"""``/admin/lists``: the lists (newsletters) with their members by status, create, edit and
delete, each list's public page and the HTML form snippet to paste into any website.
Editors and admins (any signed-in user), like the subscriber pages.

A refused value shows the form again (400) with what was typed and why. Deleting a list
with members asks first (a page that says what goes); the default list and a list an
issue targets are refused with the reason (409).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.auth.web import require_session
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.lists.domain import (
    MAX_DESCRIPTION,
    MAX_NAME,
    MAX_SLUG,
    SLUG_PATTERN,
    ListDraft,
    MemberStatus,
)
from herald.lists.service import ListService
from herald.web import csrf, flash
from herald.web.errors import FormError, form_errors
from herald.web.forms import read_form
from herald.web.pages import page
from herald.web.state import AppState, State
from herald.welcomes.service import WelcomeService

router = APIRouter(prefix="/admin/lists", tags=["admin"], dependencies=[Depends(require_session)])

LISTS = "/admin/lists"
FORM_FIELDS = ("name", "slug", "description", "visibility", "opt_in")
STATUS_TABS = [
    ("", "All"),
    (MemberStatus.CONFIRMED.value, "Confirmed"),
    (MemberStatus.PENDING.value, "Pending"),
    (MemberStatus.UNSUBSCRIBED.value, "Unsubscribed"),
]
LIMITS = {
    "max_name": MAX_NAME,
    "max_slug": MAX_SLUG,
    "max_description": MAX_DESCRIPTION,
    "slug_pattern": SLUG_PATTERN,
}


def _service(state: AppState) -> ListService:
    return ListService(state.db, state.settings)


def _draft(form: dict[str, str]) -> ListDraft:
    return ListDraft.parse(
        name=form.get("name", ""),
        slug=form.get("slug", ""),
        description=form.get("description", ""),
        visibility=form.get("visibility", "public"),
        opt_in=form.get("opt_in", "double"),
    )


def _sentence(message: str) -> str:
    """A service's message as a flash: "the default list …" → "The default list …."."""
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def _typed(form: dict[str, str]) -> dict[str, str]:
    return {name: form.get(name, "") for name in FORM_FIELDS}


@router.get("", response_class=HTMLResponse)
async def lists(request: Request, state: State) -> Response:
    index = await _service(state).lists()
    return page(request, "admin/lists.html", lists=index.lists, more=index.more)


@router.get("/new", response_class=HTMLResponse)
async def new_list(request: Request) -> Response:
    blank = {"name": "", "slug": "", "description": "", "visibility": "public", "opt_in": "double"}
    return page(request, "admin/list_new.html", form=blank, limits=LIMITS)


@router.post("")
async def create(request: Request, state: State) -> Response:
    form = await read_form(request, max_fields=10)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    try:
        created = await _service(state).create(_draft(form))
    except (ValidationError, Conflict) as exc:
        status = 409 if isinstance(exc, Conflict) else 400
        return page(
            request,
            "admin/list_new.html",
            status_code=status,
            form=_typed(form),
            error=exc.message,
            field=getattr(exc, "field", None) or ("slug" if status == 409 else None),
            limits=LIMITS,
        )
    return flash.redirect(
        f"{LISTS}/{created.id}", state.settings, f"The list {created.name} has been created."
    )


def _member_view(query: dict[str, str]) -> tuple[MemberStatus | None, uuid.UUID | None]:
    """The members shown: ``status`` (a membership status, or all) and ``after`` (the last
    subscriber id of the previous page); a bad value is a 400 naming it."""
    raw_status, raw_after = query.get("status", ""), query.get("after", "")
    status = MemberStatus.parse(raw_status) if raw_status else None
    try:
        after = uuid.UUID(raw_after) if raw_after else None
    except ValueError:
        raise ValidationError("after must be a subscriber id", field="after") from None
    return status, after


async def _list_page(
    request: Request,
    state: AppState,
    list_id: uuid.UUID,
    *,
    members: MemberStatus | None = None,
    after: uuid.UUID | None = None,
    form: dict[str, str] | None = None,
    error: str | None = None,
    field: str | None = None,
    code: int = 200,
) -> Response:
    """The list's page: its details, snippet, edit form and a page of its members (of one
    status, after a subscriber id)."""
    service = _service(state)
    view = await service.overview(list_id, status=members, after=after)
    news_list = view.news_list
    shown = form or {
        "name": news_list.name,
        "slug": news_list.slug,
        "description": news_list.description,
        "visibility": news_list.visibility.value,
        "opt_in": news_list.opt_in.value,
    }
    return page(
        request,
        "admin/list.html",
        status_code=code,
        news_list=news_list,
        snippet=service.snippet(news_list),
        public_url=f"{state.settings.public_base_url.rstrip('/')}/l/{news_list.slug}",
        form=shown,
        error=error,
        field=field,
        limits=LIMITS,
        members=view.members,
        welcome=await WelcomeService(state.db, state.settings).get(list_id),
        member_status=members.value if members else "",
        next_members=view.members[-1].subscriber_id if view.more and view.members else None,
        statuses=STATUS_TABS,
    )


@router.get("/{list_id}", response_class=HTMLResponse)
async def show(request: Request, state: State, list_id: uuid.UUID) -> Response:
    status, after = _member_view(dict(request.query_params))
    return await _list_page(request, state, list_id, members=status, after=after)


@router.post("/{list_id}")
async def update(request: Request, state: State, list_id: uuid.UUID) -> Response:
    form = await read_form(request, max_fields=10)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    service = _service(state)
    try:
        updated = await service.update(list_id, _draft(form))
    except (ValidationError, Conflict) as exc:
        status = 409 if isinstance(exc, Conflict) else 400
        field = getattr(exc, "field", None) or ("slug" if status == 409 else None)
        return await _list_page(
            request, state, list_id, form=_typed(form), error=exc.message, field=field, code=status
        )
    return flash.redirect(
        f"{LISTS}/{list_id}", state.settings, f"The list {updated.name} has been saved."
    )


@router.get("/{list_id}/delete", response_class=HTMLResponse)
async def confirm_delete(request: Request, state: State, list_id: uuid.UUID) -> Response:
    return page(request, "admin/list_delete.html", news_list=await _service(state).get(list_id))


@router.post("/{list_id}/delete")
async def delete(request: Request, state: State, list_id: uuid.UUID) -> Response:
    form = await read_form(request, max_fields=5)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    try:
        with form_errors(LISTS, NotFound):
            outcome = await _service(state).delete(list_id, confirmed=form.get("confirm") == "yes")
    except Conflict as exc:
        raise FormError(_sentence(exc.message), redirect_to=f"{LISTS}/{list_id}") from exc
    if not outcome.deleted:
        return page(request, "admin/list_delete.html", news_list=outcome.news_list)
    return flash.redirect(
        LISTS, state.settings, f"The list {outcome.news_list.name} has been deleted."
    )
