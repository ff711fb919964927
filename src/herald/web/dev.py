"""Development-only pages. Not mounted at all in production."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import HTMLResponse

from herald.core.templating import render
from herald.email.outbox import list_messages
from herald.web.state import State

router = APIRouter(prefix="/dev", tags=["development"])


@router.get("/outbox", response_class=HTMLResponse)
async def outbox(state: State) -> HTMLResponse:
    async with state.db.connection() as conn:
        messages = await list_messages(conn)
    return HTMLResponse(render("dev_outbox.html", messages=messages))
