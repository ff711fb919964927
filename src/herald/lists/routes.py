"""The public page of a list: ``GET /l/{slug}``, its name, description and sign-up form.

Private and unknown lists are both a 404 (a private list's slug is not revealed). The form
posts ``name``, ``email``, ``csrf_token``, ``list`` and ``source`` to ``POST
/subscriptions``. The page is meant to be found: it is indexable, unlike the preference
centre.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.lists.service import ListService
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(tags=["lists"])


@router.get("/l/{slug}", response_class=HTMLResponse)
async def list_page(request: Request, state: State, slug: str) -> Response:
    news_list = await ListService(state.db, state.settings).public(slug)
    return page(request, "lists/subscribe.html", news_list=news_list)
