"""The public tracking routes: ``GET /t/o/{token}.gif`` (the open pixel) and
``GET /t/c/{token}/{n}`` (a click: 302 to the issue's stored link ``n``). Parse → service →
response; ``HEAD`` is answered too and counted as a machine's (link scanners use it).

Neither ever fails on junk: a pixel URL that is not ours still gets the pixel (and nothing
is recorded), a click URL that is not ours or names no link is the 404 page, never a
redirect. Both are private to one reader: not cached, no referrer, not indexed."""

from __future__ import annotations

import base64

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from herald.engagement.domain import MAX_AGENT, Hit
from herald.engagement.service import Engagement
from herald.web.client import client_ip
from herald.web.state import State

router = APIRouter(tags=["engagement"])

# The smallest transparent GIF: 1x1, 42 bytes.
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PRIVATE = {
    "Cache-Control": "no-store, private",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
}


def _hit(request: Request) -> Hit:
    return Hit(
        user_agent=request.headers.get("user-agent", "")[:MAX_AGENT],
        client_ip=client_ip(request),
        head=request.method == "HEAD",
    )


@router.api_route("/t/o/{token}.gif", methods=["GET", "HEAD"], include_in_schema=False)
async def open_pixel(token: str, request: Request, state: State) -> Response:
    await Engagement(state.db, state.settings).opened(token, _hit(request))
    return Response(PIXEL, media_type="image/gif", headers=PRIVATE)


@router.api_route("/t/c/{token}/{n}", methods=["GET", "HEAD"], include_in_schema=False)
async def click(token: str, n: str, request: Request, state: State) -> Response:
    url = await Engagement(state.db, state.settings).clicked(token, n, _hit(request))
    return RedirectResponse(url, status_code=302, headers=PRIVATE)
