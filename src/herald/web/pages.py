"""Render a full HTML page: flashes shown once, a CSRF token, the CSP nonce, the user.

The layout (``web/templates/layout.html``) also gets the request path, to mark the
active navigation item.

Every server-rendered page goes through :func:`page`, so no template can forget
the CSRF token or leave a flash message standing.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse

from herald.core.templating import render
from herald.web import csrf, flash
from herald.web.cookies import CSRF_COOKIE, set_cookie
from herald.web.state import state_of


def page(
    request: Request,
    template: str,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> HTMLResponse:
    state = state_of(request)
    settings = state.settings
    flashes = flash.read(request, settings)
    token = csrf.token_for(request, settings)
    session = getattr(request.state, "session", None)
    html = render(
        template,
        flashes=flashes,
        csrf_token=token,
        csp_nonce=getattr(request.state, "csp_nonce", ""),
        user=session,
        current_path=request.url.path,
        **context,
    )
    response = HTMLResponse(html, status_code=status_code, headers=headers)
    new_cookie = getattr(request.state, "new_csrf_cookie", None)
    if new_cookie:
        set_cookie(response, settings, CSRF_COOKIE, new_cookie)
    if flashes:
        flash.clear(response, settings)
    response.headers["Cache-Control"] = "no-store"
    return response
