"""The public issue route: a reader's web copy ("view in browser"). Parse → service →
response; the page is :mod:`herald.issues.webcopy`'s."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import HTMLResponse, Response

from herald.issues.webcopy import WebCopies
from herald.web.state import State

router = APIRouter(tags=["issues"])

# The email's own look: its inline styles and <style> blocks, images from anywhere it links
# them; no script of any kind (nothing allows one, and the sandbox forbids it besides), no
# forms, no framing. Herald's nonce policy (web/security.py) would block the inline styles.
WEB_COPY_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; font-src * data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'; "
    "sandbox allow-popups allow-popups-to-escape-sandbox allow-top-navigation-by-user-activation"
)
WEB_COPY_HEADERS = {
    "Content-Security-Policy": WEB_COPY_CSP,
    "X-Robots-Tag": "noindex, nofollow, noarchive",
    "Referrer-Policy": "no-referrer",  # the token is in the URL
    "Cache-Control": "private, max-age=600",
}


@router.get("/v/{token}", response_class=HTMLResponse, include_in_schema=False)
async def web_copy(token: str, state: State) -> Response:
    html = await WebCopies(state.db, state.settings).page(token)
    return HTMLResponse(html, headers=WEB_COPY_HEADERS)
