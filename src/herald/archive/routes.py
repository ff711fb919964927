"""The public archive's routes: ``GET /archive/{list}``, ``/archive/{list}/{issue}``,
``/archive/{list}/feed.rss`` and ``/feed.atom``. Parse → one service call → response.

The pages are meant to be found (indexable, a canonical link, the feeds advertised), unlike
a reader's web copy. They carry the issue's own inline styles, so they answer with a policy
of their own: styles from Herald and inline, images from anywhere, no script of any kind, no
forms, no framing.
"""

from __future__ import annotations

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.archive.domain import Validators
from herald.archive.service import Archive, FeedKind, NotModified
from herald.core.templating import render
from herald.web.state import State

router = APIRouter(tags=["archive"])

ARCHIVE_CSP = (
    "default-src 'none'; style-src 'self' 'unsafe-inline'; img-src * data:; font-src * data:; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)
PAGE_CACHE = "public, max-age=300"
INDEX_CACHE = "public, max-age=60"


def _conditions(request: Request) -> tuple[str | None, str | None]:
    return request.headers.get("if-none-match"), request.headers.get("if-modified-since")


def _cached(validators: Validators) -> dict[str, str]:
    """The headers of a page or feed with validators (its 200 and its 304)."""
    return {
        "ETag": validators.etag,
        "Last-Modified": validators.http_date,
        "Cache-Control": PAGE_CACHE,
    }


@router.api_route(
    "/archive/{list_slug}",
    methods=["GET", "HEAD"],
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def archive_index(
    list_slug: str, state: State, before: str | None = Query(default=None, max_length=200)
) -> Response:
    page = await Archive(state.db, state.settings).index(list_slug, before)
    headers = {"Content-Security-Policy": ARCHIVE_CSP, "Cache-Control": INDEX_CACHE}
    return HTMLResponse(render("archive/index.html", page=page), headers=headers)


async def _feed(request: Request, state: State, list_slug: str, kind: FeedKind) -> Response:
    result = await Archive(state.db, state.settings).feed(list_slug, kind, *_conditions(request))
    if isinstance(result, NotModified):
        return Response(status_code=304, headers=_cached(result.validators))
    headers = _cached(result.validators)
    return Response(result.body, media_type=result.content_type, headers=headers)


@router.api_route("/archive/{list_slug}/feed.rss", methods=["GET", "HEAD"], include_in_schema=False)
async def rss_feed(request: Request, state: State, list_slug: str) -> Response:
    return await _feed(request, state, list_slug, "rss")


@router.api_route(
    "/archive/{list_slug}/feed.atom", methods=["GET", "HEAD"], include_in_schema=False
)
async def atom_feed(request: Request, state: State, list_slug: str) -> Response:
    return await _feed(request, state, list_slug, "atom")


@router.api_route(
    "/archive/{list_slug}/{slug}",
    methods=["GET", "HEAD"],
    response_class=HTMLResponse,
    include_in_schema=False,
)
async def archive_issue(request: Request, state: State, list_slug: str, slug: str) -> Response:
    result = await Archive(state.db, state.settings).issue(list_slug, slug, *_conditions(request))
    if isinstance(result, NotModified):
        return Response(status_code=304, headers=_cached(result.validators))
    headers = {"Content-Security-Policy": ARCHIVE_CSP, **_cached(result.validators)}
    return HTMLResponse(render("archive/issue.html", page=result), headers=headers)
