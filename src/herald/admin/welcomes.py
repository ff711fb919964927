"""``/admin/lists/{id}/welcome``: a list's welcome email — on or off, subject, Markdown
body — with a preview in the email layout and a test send. Editors and admins.

The editor is a plain form (it saves without JavaScript); its Preview button posts the
same form into the page's sandboxed preview frame, as the layout editor's does
(``web/static/design.js`` re-posts it while typing). A body that does not compile or
render for the sample reader is refused with the reason (400, the form again as typed).
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.admin.branding import FRAME_HEADERS, error_document
from herald.auth.web import CurrentSession, require_session
from herald.core.errors import NotFound, ValidationError
from herald.issues.previews import parse_part, parse_scheme
from herald.web import csrf, flash
from herald.web.errors import form_errors
from herald.web.forms import read_form
from herald.web.pages import page
from herald.web.state import AppState, State
from herald.welcomes.domain import MAX_BODY, MAX_SUBJECT, WelcomeDraft
from herald.welcomes.service import WelcomeService

router = APIRouter(prefix="/admin/lists", tags=["admin"], dependencies=[Depends(require_session)])

FIELDS = 8
# 20,000 characters of Markdown, URL-encoded: up to 9 bytes each outside ASCII.
FORM_MAX_BYTES = 256 * 1024


def _service(state: AppState) -> WelcomeService:
    return WelcomeService(state.db, state.settings)


def _url(list_id: uuid.UUID) -> str:
    return f"/admin/lists/{list_id}/welcome"


def _draft(form: dict[str, str]) -> WelcomeDraft:
    return WelcomeDraft.parse(
        enabled=form.get("enabled"), subject=form.get("subject"), body=form.get("body")
    )


async def _checked(request: Request, state: AppState) -> dict[str, str]:
    form = await read_form(request, max_fields=FIELDS)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    return form


async def _editor(
    request: Request,
    state: AppState,
    list_id: uuid.UUID,
    *,
    typed: dict[str, str] | None = None,
    error: ValidationError | None = None,
) -> Response:
    view = await _service(state).view(list_id)
    form = (
        {
            "enabled": typed.get("enabled", ""),
            "subject": typed.get("subject", ""),
            "body": typed.get("body", ""),
        }
        if typed is not None
        else {
            "enabled": "on" if view.draft.enabled else "",
            "subject": view.draft.subject,
            "body": view.draft.body,
        }
    )
    form["part"] = (typed or {}).get("part") or "html"
    form["scheme"] = (typed or {}).get("scheme") or "light"
    return page(
        request,
        "admin/list_welcome.html",
        status_code=400 if error is not None else 200,
        news_list=view.news_list,
        welcome=view.welcome,
        form=form,
        error=error.message if error is not None else None,
        field=getattr(error, "field", None),
        max_subject=MAX_SUBJECT,
        max_body=MAX_BODY,
    )


@router.get("/{list_id}/welcome", response_class=HTMLResponse)
async def edit(request: Request, state: State, list_id: uuid.UUID) -> Response:
    return await _editor(request, state, list_id)


@router.post("/{list_id}/welcome")
async def save(
    request: Request, state: State, session: CurrentSession, list_id: uuid.UUID
) -> Response:
    form = await _checked(request, state)
    try:
        saved = await _service(state).save(list_id, _draft(form), session.user_id)
    except ValidationError as exc:  # the form again, as typed, with the reason
        return await _editor(request, state, list_id, typed=form, error=exc)
    message = (
        "The welcome email has been saved: new members get it."
        if saved.enabled
        else "The welcome email has been saved. It is off: nobody gets it."
    )
    return flash.redirect(_url(list_id), state.settings, message)


@router.get("/{list_id}/welcome/preview", response_class=HTMLResponse)
async def preview_saved(state: State, list_id: uuid.UUID) -> Response:
    """The saved welcome (or the blank one) for the sample reader, for the preview frame:
    light, as the editor's toggle starts."""
    try:
        preview = await _service(state).preview(list_id)
    except ValidationError as exc:
        return error_document(exc.message)
    return HTMLResponse(preview.document("light"), headers=FRAME_HEADERS)


@router.post("/{list_id}/welcome/preview", response_class=HTMLResponse)
async def preview_unsaved(request: Request, state: State, list_id: uuid.UUID) -> Response:
    """The form's unsaved welcome for the sample reader: its ``part`` (html, text) in its
    ``scheme`` (light, dark); a 400 document saying why not."""
    form = await _checked(request, state)
    try:
        part, scheme = parse_part(form.get("part")), parse_scheme(form.get("scheme"))
        preview = await _service(state).preview(list_id, _draft(form))
    except ValidationError as exc:
        return error_document(exc.message)
    return HTMLResponse(preview.document(scheme, part), headers=FRAME_HEADERS)


@router.post("/{list_id}/welcome/test")
async def send_test(request: Request, state: State, list_id: uuid.UUID) -> Response:
    """The saved welcome to one address, marked [TEST]."""
    form = await _checked(request, state)
    with form_errors(_url(list_id), ValidationError, NotFound):
        address = await _service(state).send_test(list_id, form.get("email", ""))
    return flash.redirect(
        _url(list_id), state.settings, f"A test of the welcome email is on its way to {address}."
    )
