"""The public logo route: ``GET /brand/logo/{sha256}.{ext}``, the images emails point to.

A logo's path names the hash of its bytes, so its content never changes: it is cached
for a year by browsers, mail proxies (Gmail's, Apple's) and CDNs (``immutable``), its ETag
is the hash, and a conditional request gets 304. No session, no cookie: mail clients fetch
it as anyone would.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from herald.design.service import DesignService
from herald.web.state import State

router = APIRouter(tags=["design"])

LOGO_CACHE_CONTROL = "public, max-age=31536000, immutable"


@router.api_route("/brand/logo/{name}", methods=["GET", "HEAD"], include_in_schema=False)
async def logo(name: str, request: Request, state: State) -> Response:
    content_type, data = await DesignService(state.db, state.settings).logo(name)
    etag = f'"{name.partition(".")[0]}"'
    headers = {
        "Cache-Control": LOGO_CACHE_CONTROL,
        "ETag": etag,
        "Content-Security-Policy": "default-src 'none'; sandbox",
        "Cross-Origin-Resource-Policy": "cross-origin",
    }
    wanted = request.headers.get("if-none-match", "")
    if wanted.strip() == "*" or etag in {
        tag.strip().removeprefix("W/") for tag in wanted.split(",")
    }:
        return Response(status_code=304, headers=headers)
    return Response(data, media_type=content_type, headers=headers)
