"""The contract form: GET/POST /admin/newsletters publishes an issue at once.

Parse → create and publish the issue, once per idempotency key (the service holds the
key, the issue and the stored response in one transaction) → 303 with the accepted
flash, or the first response again for a key used before.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.admin import idempotency
from herald.auth.web import CurrentSession, require_session
from herald.issues.domain import IssueContent
from herald.issues.rendering import off_loop
from herald.issues.service import IssueService
from herald.web import csrf, flash
from herald.web.forms import read_form
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])

ACCEPTED = "The newsletter issue has been accepted - emails will go out shortly."


@router.get("/newsletters", response_class=HTMLResponse)
async def newsletter_form(request: Request) -> Response:
    return page(request, "admin/newsletters.html", idempotency_key=str(uuid.uuid4()))


@router.post("/newsletters")
async def publish_newsletter(request: Request, state: State, session: CurrentSession) -> Response:
    form = await read_form(request, max_fields=20)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    key = idempotency.parse_key(form.get("idempotency_key"))
    title = form.get("title", "")
    text_content = form.get("text_content", "")
    html_content = form.get("html_content", "")
    content = await off_loop(  # HTML→text is CPU work: off the event loop
        lambda: IssueContent.parse(
            title=title, html_content=html_content, text_content=text_content
        )
    )
    once = idempotency.StoredResponse(
        session.user_id,
        key,
        idempotency.request_hash(title, text_content, html_content),
        respond=lambda: flash.redirect("/admin/newsletters", state.settings, ACCEPTED),
    )
    service = IssueService(state.db, state.settings)
    return await service.publish_new(content, session.user_id, once)
