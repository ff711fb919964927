"""The preference centre's pages (public, no login: the signed token is the credential).
Parse → one service call → response.

Every response is private to the reader: not indexed (``X-Robots-Tag`` and the robots
meta), not cached, and no referrer leaves the site with a click (the token is in the URL).
POSTs check the CSRF token as well as the signed one.
"""

from __future__ import annotations

import json

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.preferences.service import PreferenceCentre
from herald.subscriptions.welcoming import NO_WELCOMES, Welcomer
from herald.web import csrf, flash
from herald.web.client import client_ip
from herald.web.forms import read_form, read_form_multi
from herald.web.pages import page
from herald.web.state import AppState, State

router = APIRouter(tags=["preferences"])

PRIVATE = {
    "X-Robots-Tag": "noindex, nofollow, noarchive",
    # No referrer leaves the site; "no-referrer" would also make the browser post the
    # page's forms with "Origin: null", which the CSRF check rightly refuses.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "private, no-store",
}
SAVED = "Your preferences have been saved."
UNSUBSCRIBED = "You have been unsubscribed from everything: no newsletter will be sent to you."
TRACKING = {
    True: "Opens and clicks may be counted in the issues that count them.",
    False: "Your emails will carry no tracking image and only plain links.",
}
MAX_FIELDS = 1000


def _centre(state: AppState) -> PreferenceCentre:
    return PreferenceCentre(state.db, state.settings, state.find(Welcomer) or NO_WELCOMES)


def _token(request: Request) -> str:
    return request.query_params.get("token", "")


def _here(token: str) -> str:
    return f"/preferences?token={token}" if token.isascii() else "/preferences"


def _private(response: Response) -> Response:
    response.headers.update(PRIVATE)
    return response


@router.get("/preferences", response_class=HTMLResponse, include_in_schema=False)
async def preferences(request: Request, state: State) -> Response:
    token = _token(request)
    prefs = await _centre(state).view(token)
    return _private(page(request, "preferences/page.html", prefs=prefs, token=token))


@router.post("/preferences", include_in_schema=False)
async def save(request: Request, state: State) -> Response:
    token = _token(request)
    fields = await read_form_multi(request, max_fields=MAX_FIELDS)
    csrf.check(request, state.settings, (fields.get(csrf.FORM_FIELD) or [""])[-1])
    await _centre(state).save(
        token,
        fields.get("list", []),
        ip=client_ip(request),
        user_agent=request.headers.get("user-agent", ""),
    )
    return _private(flash.redirect(_here(token), state.settings, SAVED))


@router.post("/preferences/unsubscribe", include_in_schema=False)
async def unsubscribe_all(request: Request, state: State) -> Response:
    token = _token(request)
    csrf.check(request, state.settings, (await read_form(request)).get(csrf.FORM_FIELD))
    await _centre(state).unsubscribe_all(token)
    return _private(flash.redirect(_here(token), state.settings, UNSUBSCRIBED))


@router.post("/preferences/tracking", include_in_schema=False)
async def set_tracking(request: Request, state: State) -> Response:
    token = _token(request)
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    on = form.get("tracking") == "on"
    await _centre(state).set_tracking(token, on=on)
    return _private(flash.redirect(_here(token), state.settings, TRACKING[on]))


@router.post("/preferences/data", include_in_schema=False)
async def download(request: Request, state: State) -> Response:
    token = _token(request)
    csrf.check(request, state.settings, (await read_form(request)).get(csrf.FORM_FIELD))
    data = await _centre(state).data(token)
    body = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return _private(
        Response(
            body,
            media_type="application/json",
            headers={"Content-Disposition": 'attachment; filename="my-newsletter-data.json"'},
        )
    )


@router.get("/preferences/erase", response_class=HTMLResponse, include_in_schema=False)
async def erase_page(request: Request, state: State) -> Response:
    """The confirmation step (a GET changes nothing)."""
    token = _token(request)
    email = await _centre(state).email(token)
    return _private(page(request, "preferences/erase.html", email=email, token=token))


@router.post("/preferences/erase", include_in_schema=False)
async def erase(request: Request, state: State) -> Response:
    token = _token(request)
    fields = await read_form(request)
    csrf.check(request, state.settings, fields.get(csrf.FORM_FIELD))
    if fields.get("confirm") != "yes":
        return await erase_page(request, state)
    await _centre(state).erase(token)
    return _private(page(request, "preferences/erased.html"))
