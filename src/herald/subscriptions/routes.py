"""Public subscription routes: parse → use case → response. Nothing else lives here."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response

from herald.core.errors import UnsupportedMediaType, ValidationError
from herald.core.templating import render
from herald.subscriptions.service import SubscriptionService
from herald.subscriptions.signup import SignUp
from herald.subscriptions.unsubscribe import preferences_url
from herald.subscriptions.unsubscribing import Unsubscribing
from herald.subscriptions.welcoming import NO_WELCOMES, Welcomer
from herald.web.client import client_ip
from herald.web.forms import FORM_TYPES, read_form, read_form_multi
from herald.web.json_body import is_json, read_json_object
from herald.web.negotiate import Format, preferred_format
from herald.web.pages import page
from herald.web.state import AppState, State

router = APIRouter(tags=["subscriptions"])


# The same answer whatever the address's state, so the form cannot be used to
# find out who is subscribed.
SUBSCRIBED_MESSAGE = (
    "Thanks! Please check your inbox: we sent you an email with a link to confirm "
    "your subscription."
)
CONFIRMED_MESSAGE = "subscription confirmed"
# The unsubscribe pages name the reader and carry their token: never indexed, cached or
# sent on as a referrer.
PRIVATE_PAGE = {
    "X-Robots-Tag": "noindex, nofollow, noarchive",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
}


@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    # Through page(): the form carries a csrf_token field. POST /subscriptions does
    # not require it (zero2prod's API clients post without one); browsers get it anyway.
    return page(request, "subscriptions/home.html")


# A 64 KiB body holds at most ~32,000 fields: read them all, so that too many ``list``
# fields is a 400 naming that field (the form parser's own cap would say less).
MAX_FORM_FIELDS = 40_000


async def _fields(request: Request) -> dict[str, Any]:
    if is_json(request):
        return await read_json_object(request, '{"name": …, "email": …, "list": […]}')
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type in FORM_TYPES:
        multi = await read_form_multi(request, max_fields=MAX_FORM_FIELDS)
        fields: dict[str, Any] = {key: values[-1] for key, values in multi.items()}
        fields["list"] = multi.get("list")  # repeated: one per list chosen
        return fields
    raise UnsupportedMediaType(
        f"unsupported content type {media_type!r}: send a form "
        "(application/x-www-form-urlencoded) or JSON"
    )


def _subscriptions(state: AppState) -> SubscriptionService:
    """The service with this process's welcomer (the lists' welcome emails), if any."""
    return SubscriptionService(state.db, state.settings, state.find(Welcomer) or NO_WELCOMES)


@router.post("/subscriptions")
async def subscribe(request: Request, state: State) -> Response:
    """Contract §4 (``name``, ``email``), and optionally ``list`` (repeated: the slugs of
    the lists chosen; none: the default list) and ``source`` (``l/<slug>``: the list's
    public page the form was on)."""
    fields = await _fields(request)
    signup = SignUp.parse(
        name=fields.get("name"),
        email=fields.get("email"),
        lists=fields.get("list"),
        source=fields.get("source"),
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent"),
    )
    await _subscriptions(state).subscribe(signup)
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
    await _subscriptions(state).confirm(token)
    fmt = preferred_format(request)
    if fmt is Format.JSON:
        return JSONResponse({"status": "confirmed", "message": CONFIRMED_MESSAGE})
    return HTMLResponse(render("subscriptions/confirmed.html"))


@router.get("/unsubscribe/one-click", response_class=HTMLResponse)
async def unsubscribe_page(request: Request, state: State) -> Response:
    """The link in the email body: what the button will do (leave the issue's lists, or
    everything) and a link to the preference centre. A GET changes nothing, so link
    scanners cannot unsubscribe anyone."""
    token = request.query_params.get("token", "")
    issue = request.query_params.get("issue", "")
    list_ = request.query_params.get("list", "")
    leaving = await Unsubscribing(state.db, state.settings).leaving(token, issue, list_)
    return page(
        request,
        "subscriptions/unsubscribe.html",
        headers=PRIVATE_PAGE,
        leaving=leaving,
        token=token,
        issue=issue,
        list_id=list_,
    )


@router.post("/unsubscribe/one-click")
async def unsubscribe(request: Request, state: State) -> Response:
    """RFC 8058 one-click: ``List-Unsubscribe=One-Click`` posted to the header's URL, which
    names the issue: its lists only (``list``, a welcome email's: that list only; neither:
    everything). No login, and no CSRF
    check (the token is the credential, and mail providers post without one); the page's
    form carries ``csrf_token`` all the same. 200, idempotent, no redirect."""
    token = request.query_params.get("token", "")
    if not token:
        token = (await read_form(request)).get("token", "")
    issue = request.query_params.get("issue", "")
    list_ = request.query_params.get("list", "")
    left = await Unsubscribing(state.db, state.settings).unsubscribe(token, issue, list_)
    if preferred_format(request) is Format.JSON:
        return JSONResponse({"status": "unsubscribed"})
    return HTMLResponse(
        render(
            "subscriptions/unsubscribed.html",
            everything=left.everything,
            preferences_url=preferences_url(state.settings, token),
        ),
        headers=PRIVATE_PAGE,
    )
