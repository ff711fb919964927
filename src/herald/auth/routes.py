"""Log in and log out: ``GET``/``POST /login`` (fields ``username``, ``password``, ``csrf_token``)
and ``POST /admin/logout``; parse → use case → redirect with a flash."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.auth import devices
from herald.auth.service import AuthenticationFailed
from herald.auth.web import auth_service, optional_session, require_session
from herald.web import csrf, flash
from herald.web.client import client_ip
from herald.web.cookies import DEVICE_COOKIE, SESSION_COOKIE, clear_cookie, set_cookie
from herald.web.errors import form_errors
from herald.web.forms import read_form
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(tags=["auth"])

LOGIN_FAILED = "Authentication failed"
LOGGED_OUT = "You have successfully logged out."


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request, state: State) -> Response:
    if await optional_session(request, state) is not None:
        return flash.redirect("/admin/dashboard", state.settings)
    return page(request, "auth/login.html")


@router.post("/login")
async def login(request: Request, state: State) -> Response:
    form = await read_form(request)
    request.state.session = None  # the login form is bound to the anonymous cookie
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    service = auth_service(state)
    with form_errors("/login", AuthenticationFailed, message=LOGIN_FAILED):
        user = await service.authenticate(
            form.get("username", ""),
            form.get("password", ""),
            client_ip(request),
            device=request.cookies.get(DEVICE_COOKIE),
        )
    old = request.cookies.get(SESSION_COOKIE)
    if old:
        await service.end_session(old)  # never keep a pre-login session id
    token = await service.start_session(
        user, user_agent=request.headers.get("user-agent"), ip=client_ip(request)
    )
    response = flash.redirect("/admin/dashboard", state.settings)
    set_cookie(response, state.settings, SESSION_COOKIE, token)
    # Kept through logouts: this browser's sign-ins are not slowed by strangers' failures.
    set_cookie(
        response,
        state.settings,
        DEVICE_COOKIE,
        service.new_device_cookie(user),
        max_age=devices.MAX_AGE_SECONDS,
    )
    return response


@router.post("/admin/logout", dependencies=[Depends(require_session)])
async def logout(request: Request, state: State) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    await auth_service(state).end_session(request.cookies.get(SESSION_COOKIE, ""))
    response = flash.redirect("/login", state.settings, LOGGED_OUT)
    clear_cookie(response, state.settings, SESSION_COOKIE)
    return response
