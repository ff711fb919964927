"""Public subscription routes: parse → use case → response. Nothing else lives here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from herald.core.errors import UnsupportedMediaType, ValidationError
from herald.core.templating import render
from herald.subscriptions.domain import NewSubscriber
from herald.subscriptions.service import SubscriptionService
from herald.web.forms import FORM_TYPES, read_form
from herald.web.negotiate import Format, preferred_format
from herald.web.state import State

router = APIRouter(tags=["subscriptions"])

# The same answer whatever the address's state, so the form cannot be used to
# find out who is subscribed.
SUBSCRIBED_MESSAGE = (
    "Thanks! Please check your inbox: we sent you an email with a link to confirm "
    "your subscription."
)
CONFIRMED_MESSAGE = "subscription confirmed"


@router.get("/", response_class=HTMLResponse)
async def home() -> HTMLResponse:
    return HTMLResponse(render("subscriptions/home.html"))


async def _fields(request: Request) -> dict[str, Any]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            data = await request.json()
        except ValueError:
            raise ValidationError("the request body is not valid JSON") from None
        if not isinstance(data, dict):
            raise ValidationError('the JSON body must be an object like {"name": …, "email": …}')
        return data
    if media_type in FORM_TYPES:
        return await read_form(request)
    raise UnsupportedMediaType(
        f"unsupported content type {media_type!r}: send a form "
        "(application/x-www-form-urlencoded) or JSON"
    )


@router.post("/subscriptions")
async def subscribe(request: Request, state: State) -> Response:
    fields = await _fields(request)
    new = NewSubscriber.parse(name=fields.get("name"), email=fields.get("email"))
    await SubscriptionService(state.db, state.settings).subscribe(new)
    fmt = preferred_format(request)
    if fmt is Format.JSON:
        return JSONResponse({"status": "pending_confirmation", "message": SUBSCRIBED_MESSAGE})
    if fmt is Format.HTML:
        return HTMLResponse(render("subscriptions/subscribed.html", message=SUBSCRIBED_MESSAGE))
    return PlainTextResponse(SUBSCRIBED_MESSAGE + "\n")


@router.get("/subscriptions/confirm")
async def confirm(request: Request, state: State) -> Response:
    token = request.query_params.get("subscription_token", "").strip()
    if not token:
        raise ValidationError(
            "subscription_token is missing: use the link from the confirmation email",
            field="subscription_token",
        )
    await SubscriptionService(state.db, state.settings).confirm(token)
    fmt = preferred_format(request)
    if fmt is Format.JSON:
        return JSONResponse({"status": "confirmed", "message": CONFIRMED_MESSAGE})
    return HTMLResponse(render("subscriptions/confirmed.html"))
