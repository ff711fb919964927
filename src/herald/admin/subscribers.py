"""Subscriber pages: search by address, and one subscriber's delivery history."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.auth.web import require_session
from herald.issues.views import IssueViews
from herald.subscriptions.service import SubscriptionService
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])


@router.get("/subscribers", response_class=HTMLResponse)
async def list_subscribers(
    request: Request,
    state: State,
    q: str = "",
    page_number: Annotated[int, Query(alias="page")] = 1,
) -> Response:
    found = await SubscriptionService(state.db, state.settings).search(q, page_number)
    return page(
        request,
        "admin/subscribers.html",
        subscribers=found.subscribers,
        q=found.query,
        page_number=found.number,
        has_next=found.has_next,
    )


@router.get("/subscribers/{subscriber_id}", response_class=HTMLResponse)
async def show_subscriber(request: Request, state: State, subscriber_id: uuid.UUID) -> Response:
    subscriber = await SubscriptionService(state.db, state.settings).subscriber(subscriber_id)
    history = await IssueViews(state.db, state.settings).subscriber_history(subscriber_id)
    return page(request, "admin/subscriber.html", subscriber=subscriber, history=history)
