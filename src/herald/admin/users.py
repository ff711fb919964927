"""``/admin/users``: admins list, create, disable and enable users, change their role and
reset their password. Every route needs an admin (``require_admin``: 403 for editors)."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.auth.accounts import LastAdmin
from herald.auth.domain import MIN_PASSWORD_LENGTH, Role
from herald.auth.web import AdminSession, auth_service, require_admin, user_admin
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.web import csrf, flash
from herald.web.errors import form_errors
from herald.web.forms import read_form
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(prefix="/admin/users", tags=["admin"], dependencies=[Depends(require_admin)])

ROLES = [role.value for role in Role]


@router.get("", response_class=HTMLResponse)
async def users(request: Request, state: State) -> Response:
    listing = await user_admin(state).list_users()
    return page(
        request, "admin/users.html", users=listing, roles=ROLES, min_length=MIN_PASSWORD_LENGTH
    )


@router.post("")
async def create_user(request: Request, state: State) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    with form_errors("/admin/users", ValidationError, Conflict):
        role = Role.parse(form.get("role", Role.EDITOR.value))
        await auth_service(state).create_user(
            form.get("username", ""), form.get("password", ""), role
        )
    name = form.get("username", "").strip()
    return flash.redirect("/admin/users", state.settings, f"User {name} created ({role.value}).")


@router.get("/{user_id}", response_class=HTMLResponse)
async def user(
    request: Request, state: State, session: AdminSession, user_id: uuid.UUID
) -> Response:
    found = await user_admin(state).get(user_id)
    return page(
        request,
        "admin/user.html",
        account=found,
        roles=ROLES,
        is_self=found.id == session.user_id,
        min_length=MIN_PASSWORD_LENGTH,
    )


async def _refused(
    request: Request, state: State, session: AdminSession, user_id: uuid.UUID, exc: LastAdmin
) -> Response:
    """409: the user's page again, with the reason."""
    found = await user_admin(state).get(user_id)
    return page(
        request,
        "admin/user.html",
        status_code=409,
        account=found,
        roles=ROLES,
        is_self=found.id == session.user_id,
        min_length=MIN_PASSWORD_LENGTH,
        refusal=exc.message,
    )


@router.post("/{user_id}/disable")
async def disable(
    request: Request, state: State, session: AdminSession, user_id: uuid.UUID
) -> Response:
    return await _set_disabled(request, state, session, user_id, disabled=True)


@router.post("/{user_id}/enable")
async def enable(
    request: Request, state: State, session: AdminSession, user_id: uuid.UUID
) -> Response:
    return await _set_disabled(request, state, session, user_id, disabled=False)


async def _set_disabled(
    request: Request, state: State, session: AdminSession, user_id: uuid.UUID, *, disabled: bool
) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    try:
        with form_errors("/admin/users", NotFound):
            name = await user_admin(state).set_disabled(user_id, disabled=disabled)
    except LastAdmin as exc:
        return await _refused(request, state, session, user_id, exc)
    if disabled and user_id == session.user_id:
        return flash.redirect("/login", state.settings, "Your account has been disabled.")
    done = "disabled: their sessions have ended" if disabled else "enabled"
    return flash.redirect(f"/admin/users/{user_id}", state.settings, f"User {name} {done}.")


@router.post("/{user_id}/role")
async def change_role(
    request: Request, state: State, session: AdminSession, user_id: uuid.UUID
) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    back = f"/admin/users/{user_id}"
    try:
        with form_errors(back, ValidationError), form_errors("/admin/users", NotFound):
            role = Role.parse(form.get("role", ""))
            name = await user_admin(state).set_role(user_id, role)
    except LastAdmin as exc:
        return await _refused(request, state, session, user_id, exc)
    if user_id == session.user_id and role is not Role.ADMIN:
        return flash.redirect("/admin/dashboard", state.settings, f"You are now {role.value}.")
    return flash.redirect(back, state.settings, f"User {name} is now {role.value}.")


@router.post("/{user_id}/password")
async def reset_password(
    request: Request, state: State, session: AdminSession, user_id: uuid.UUID
) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    back = f"/admin/users/{user_id}"
    with form_errors(back, ValidationError), form_errors("/admin/users", NotFound):
        name = await user_admin(state).reset_password(
            user_id, form.get("new_password", ""), form.get("new_password_check", "")
        )
    if user_id == session.user_id:
        return flash.redirect(
            "/login", state.settings, "Your password has been changed: sign in again."
        )
    return flash.redirect(
        back, state.settings, f"The password of {name} has been reset; their sessions have ended."
    )
