"""Request-level authentication: the session cookie for pages, bearer tokens for the API."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from herald.auth.accounts import UserAdmin
from herald.auth.domain import Scope, SessionRecord
from herald.auth.passwords import Passwords
from herald.auth.service import BEARER, AuthService, Principal
from herald.core.errors import Forbidden, LoginRequired, Unauthorized
from herald.web.cookies import SESSION_COOKIE
from herald.web.state import AppState, State, state_of


def auth_service(state: AppState) -> AuthService:
    return AuthService(state.db, state.settings, state.part(Passwords))


async def optional_session(request: Request, state: State) -> SessionRecord | None:
    """The visitor's live session, if any; also kept on ``request.state.session``."""
    if hasattr(request.state, "session"):
        cached: SessionRecord | None = request.state.session
        return cached
    token = request.cookies.get(SESSION_COOKIE)
    session = await auth_service(state).resolve_session(token) if token else None
    request.state.session = session
    return session


async def session_of(request: Request) -> SessionRecord | None:
    """``optional_session`` outside a route: for web/errors.py's ``SessionLookup`` (the
    error page of an unknown /admin path shows the signed-in frame)."""
    state = state_of(request)
    return await optional_session(request, state)


async def require_session(
    session: Annotated[SessionRecord | None, Depends(optional_session)],
) -> SessionRecord:
    """Every /admin route: anonymous visitors go to /login before any other check."""
    if session is None:
        raise LoginRequired("log in first")
    return session


CurrentSession = Annotated[SessionRecord, Depends(require_session)]

ADMINS_ONLY = (
    "Only admins can manage users, API keys and settings. Ask an admin if you need a change there."
)


async def require_admin(session: CurrentSession) -> SessionRecord:
    """The pages of users, API keys and settings: an editor gets 403 (the JSON API's
    scopes are a separate matter, see ``writer``)."""
    if not session.is_admin:
        raise Forbidden(ADMINS_ONLY)
    return session


AdminSession = Annotated[SessionRecord, Depends(require_admin)]


def user_admin(state: AppState) -> UserAdmin:
    return UserAdmin(state.db, state.part(Passwords))


async def principal(request: Request, state: State) -> Principal:
    """Who the bearer credential names (401 otherwise); resolved once per request and kept
    on ``request.state.principal`` (the API's idempotency check asks before the route)."""
    cached = getattr(request.state, "principal", None)
    if isinstance(cached, Principal):
        return cached
    who = await _resolve_bearer(request, state)
    request.state.principal = who
    return who


async def _resolve_bearer(request: Request, state: AppState) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            "send an API key or access token as 'Authorization: Bearer …'", challenge=BEARER
        )
    try:
        return await auth_service(state).resolve_bearer(token.strip())
    except Unauthorized as exc:
        raise Unauthorized(exc.message, challenge=f'{BEARER} error="invalid_token"') from None


async def writer(who: Annotated[Principal, Depends(principal)]) -> Principal:
    if not who.scope.allows(Scope.WRITE):
        raise Forbidden("this API key is read-only; this route needs the write scope")
    return who


async def key_manager(who: Annotated[Principal, Depends(principal)]) -> Principal:
    """The API-key routes: an admin's key or token (an editor's gets 403, as in the admin
    pages), with the write scope for changes (checked by the route's ``Writer``)."""
    if not who.is_admin:
        raise Forbidden(ADMINS_ONLY)
    return who


async def admin_writer(who: Annotated[Principal, Depends(key_manager)]) -> Principal:
    """An admin's key or token with the write scope: changes to users and keys."""
    return await writer(who)


Reader = Annotated[Principal, Depends(principal)]
Writer = Annotated[Principal, Depends(writer)]
KeyManager = Depends(key_manager)
