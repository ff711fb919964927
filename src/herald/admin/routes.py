"""The admin area. Every route here requires a session (anonymous → 303 /login)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.auth.domain import Scope
from herald.auth.service import PasswordChangeRejected
from herald.auth.web import AdminSession, CurrentSession, auth_service, require_session
from herald.core.errors import NotFound, ValidationError
from herald.web import csrf, flash
from herald.web.errors import form_errors
from herald.web.forms import read_form
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])

PASSWORD_CHANGED = "Your password has been changed."  # noqa: S105 - a message, not a secret


@router.get("/password", response_class=HTMLResponse)
async def password_form(request: Request) -> Response:
    return page(request, "admin/password.html")


@router.post("/password")
async def change_password(request: Request, state: State, session: CurrentSession) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    with form_errors("/admin/password", PasswordChangeRejected):
        await auth_service(state).change_password(
            session,
            current=form.get("current_password", ""),
            new=form.get("new_password", ""),
            check=form.get("new_password_check", ""),
        )
    return flash.redirect("/admin/password", state.settings, PASSWORD_CHANGED)


@router.get("/api-keys", response_class=HTMLResponse)
async def api_keys(request: Request, state: State, session: AdminSession) -> Response:
    keys = await auth_service(state).list_api_keys(session.user_id)
    return page(request, "admin/api_keys.html", keys=keys, scopes=[s.value for s in Scope])


@router.post("/api-keys")
async def create_api_key(request: Request, state: State, session: AdminSession) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    with form_errors("/admin/api-keys", ValidationError):
        scope = Scope.parse(form.get("scope", "read"))
        key_id, key = await auth_service(state).create_api_key(
            session.user_id, form.get("name", ""), scope
        )
    # Shown once, on this response only: never stored, never put in a cookie.
    keys = await auth_service(state).list_api_keys(session.user_id)
    return page(
        request,
        "admin/api_keys.html",
        keys=keys,
        scopes=[s.value for s in Scope],
        new_key=key,
        new_key_id=key_id,
    )


@router.post("/api-keys/{key_id}/revoke")
async def revoke_api_key(
    request: Request, state: State, session: AdminSession, key_id: uuid.UUID
) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    with form_errors("/admin/api-keys", NotFound, message="No such active API key."):
        await auth_service(state).revoke_api_key(key_id, session.user_id)
    return flash.redirect("/admin/api-keys", state.settings, "The API key has been revoked.")
