"""Subscriber pages: search by address, and one subscriber's delivery history."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.admin import subscriber_repository
from herald.auth.web import require_session
from herald.core.errors import NotFound
from herald.issues import repository as issues
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])

PAGE_SIZE = 50
MAX_PAGE = 10_000
MAX_QUERY_LENGTH = 320


@router.get("/subscribers", response_class=HTMLResponse)
async def list_subscribers(
    request: Request,
    state: State,
    q: str = "",
    page_number: Annotated[int, Query(alias="page")] = 1,
) -> Response:
    query = q.strip()[:MAX_QUERY_LENGTH]
    number = min(max(page_number, 1), MAX_PAGE)
    async with state.db.connection() as conn:
        rows = await subscriber_repository.search(
            conn, query, limit=PAGE_SIZE + 1, offset=(number - 1) * PAGE_SIZE
        )
    return page(
        request,
        "admin/subscribers.html",
        subscribers=rows[:PAGE_SIZE],
        q=query,
        page_number=number,
        has_next=len(rows) > PAGE_SIZE,
    )


@router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse)
async def show_subscriber(request: Request, state: State, subscriber_id: uuid.UUID) -> Response:
    async with state.db.connection() as conn:
        subscriber = await subscriber_repository.get(conn, subscriber_id)
        if subscriber is None:
            raise NotFound("no such subscriber")
        history = await issues.subscriber_history(conn, subscriber_id)
    return page(request, "admin/subscriber.html", subscriber=subscriber, history=history)
