"""``/admin/settings``: the settings landing page, the sender identity and the effective
configuration (both read-only: they come from the environment), and the sending domain's
SPF, DKIM and DMARC records checked live in DNS (``/deliverability``). Admins only."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from herald.admin.configuration import configuration_rows, sender_identity
from herald.auth.web import require_admin
from herald.deliverability.sending_domain import check_sending_domain
from herald.web.pages import page
from herald.web.state import State

router = APIRouter(prefix="/admin/settings", tags=["admin"], dependencies=[Depends(require_admin)])


@router.get("", response_class=HTMLResponse)
async def overview(request: Request, state: State) -> Response:
    return page(request, "admin/settings.html", sender=sender_identity(state.settings))


@router.get("/sender", response_class=HTMLResponse)
async def sender(request: Request, state: State) -> Response:
    settings = state.settings
    return page(
        request,
        "admin/settings_sender.html",
        sender=sender_identity(settings),
        base_url=settings.public_base_url,
        smtp=settings.email.smtp,
        postmark=settings.email.postmark,
    )


@router.get("/configuration", response_class=HTMLResponse)
async def configuration(request: Request, state: State) -> Response:
    return page(
        request, "admin/settings_configuration.html", rows=configuration_rows(state.settings)
    )


@router.get("/deliverability", response_class=HTMLResponse)
async def deliverability(request: Request, state: State) -> Response:
    report = await check_sending_domain(state.settings)
    return page(request, "admin/settings_deliverability.html", report=report)
