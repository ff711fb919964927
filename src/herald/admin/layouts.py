"""``/admin/templates``: the email layouts, each with a preview of a sample issue in it.
Editors and admins.

The built-in layout is listed read-only; "Copy" makes an editable copy, "Edit" saves MJML
only when it compiles and keeps its ``{{ content }}`` and unsubscribe link (a refusal shows
the editor again, 400, with what was typed and the compiler's message), "Use for all emails"
makes a layout the one every email is made with, "Delete" removes one not in use. Previews
are sandboxed documents in frames (the issue preview's policy), never part of a page.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.admin.branding import FRAME_HEADERS, error_document
from herald.admin.design_previews import DesignPreviews
from herald.auth.web import CurrentSession, require_session
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.design.domain import MAX_SOURCE_LENGTH, LayoutRecord
from herald.design.service import DesignService
from herald.web import csrf, flash
from herald.web.errors import form_errors
from herald.web.forms import read_form
from herald.web.pages import page
from herald.web.state import AppState, State

router = APIRouter(
    prefix="/admin/templates", tags=["admin"], dependencies=[Depends(require_session)]
)

LIST = "/admin/templates"


def design_service(state: AppState) -> DesignService:
    return DesignService(state.db, state.settings)


def edit_url(layout_id: str) -> str:
    return f"{LIST}/{layout_id}/edit"


async def _checked_form(request: Request, state: AppState) -> dict[str, str]:
    form = await read_form(request, max_fields=10)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    return form


@router.get("", response_class=HTMLResponse)
async def layouts(request: Request, state: State) -> Response:
    return page(request, "admin/templates.html", layouts=await design_service(state).layouts())


@router.post("/preview", response_class=HTMLResponse)
async def preview_source(request: Request, state: State) -> Response:
    """The sample in the editor's unsaved MJML, for its preview frame (a 400 document with
    the reason a save would be refused)."""
    form = await _checked_form(request, state)
    try:
        html = await DesignPreviews(state.db, state.settings).source(form.get("source", ""))
    except ValidationError as exc:
        return error_document(exc.message)
    return HTMLResponse(html, headers=FRAME_HEADERS)


@router.get("/{layout_id}/preview", response_class=HTMLResponse)
async def preview(layout_id: str, state: State) -> Response:
    html = await DesignPreviews(state.db, state.settings).layout(layout_id)
    return HTMLResponse(html, headers=FRAME_HEADERS)


@router.get("/{layout_id}/edit", response_class=HTMLResponse)
async def edit_form(request: Request, state: State, layout_id: str) -> Response:
    layout = await design_service(state).layout(layout_id)
    return _editor(request, layout, layout.name, layout.source, None)


def _editor(
    request: Request,
    layout: LayoutRecord,
    name: str,
    source: str,
    error: str | None,
    status: int = 200,
) -> Response:
    return page(
        request,
        "admin/template_edit.html",
        status_code=status,
        layout=layout,
        name=name,
        source=source,
        error=error,
        max_length=MAX_SOURCE_LENGTH,
    )


@router.post("/{layout_id}/edit")
async def save(request: Request, state: State, session: CurrentSession, layout_id: str) -> Response:
    form = await _checked_form(request, state)
    name, source = form.get("name", ""), form.get("source", "")
    service = design_service(state)
    try:
        await service.save_layout(layout_id, name=name, source=source, user_id=session.user_id)
    except ValidationError as exc:  # the editor again, with what was typed and why not
        layout = await service.layout(layout_id)
        return _editor(request, layout, name, source, exc.message, 400)
    return flash.redirect(edit_url(layout_id), state.settings, "The layout has been saved.")


@router.post("/{layout_id}/copy")
async def copy(request: Request, state: State, session: CurrentSession, layout_id: str) -> Response:
    await _checked_form(request, state)
    with form_errors(LIST, NotFound):
        new_id = await design_service(state).copy_layout(layout_id, session.user_id)
    return flash.redirect(edit_url(new_id), state.settings, "A copy has been made: edit it here.")


@router.post("/{layout_id}/activate")
async def activate(
    request: Request, state: State, session: CurrentSession, layout_id: str
) -> Response:
    await _checked_form(request, state)
    with form_errors(LIST, NotFound, ValidationError):
        name = await design_service(state).activate(layout_id, session.user_id)
    return flash.redirect(LIST, state.settings, f"Every email now uses the layout “{name}”.")


@router.post("/{layout_id}/delete")
async def delete(
    request: Request, state: State, session: CurrentSession, layout_id: str
) -> Response:
    await _checked_form(request, state)
    with form_errors(LIST, NotFound, Conflict, ValidationError):
        name = await design_service(state).delete_layout(layout_id, session.user_id)
    return flash.redirect(LIST, state.settings, f"The layout “{name}” has been deleted.")
