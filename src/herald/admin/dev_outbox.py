"""Development-only pages. Not mounted at all in production.

The outbox shows every email Herald "sent" — confirmation links and unsubscribe
tokens included — so it is served only to clients on this machine (loopback) or to
signed-in admins: ``herald up --host 0.0.0.0`` must not hand anyone on the network
a way to confirm or unsubscribe other people. (The client address is the one uvicorn
reports: behind a proxy on this machine, the proxy must send ``X-Forwarded-For`` and
be listed in ``HERALD_FORWARDED_ALLOW_IPS``, as it must for login throttling.)
"""

from __future__ import annotations

import ipaddress

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import HTMLResponse

from herald.auth.web import optional_session
from herald.core.errors import Forbidden
from herald.core.templating import render
from herald.email.outbox import read_outbox
from herald.web.state import State

router = APIRouter(prefix="/dev", tags=["development"])

NOT_LOCAL = (
    "The development outbox is shown only to clients on this machine or to signed-in "
    "admins: log in at /login first."
)


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and IPv4-mapped loopback; False for anything else."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


@router.get("/outbox", response_class=HTMLResponse)
async def outbox(request: Request, state: State) -> HTMLResponse:
    client = request.client.host if request.client else None
    if not is_loopback(client) and await optional_session(request, state) is None:
        raise Forbidden(NOT_LOCAL)
    messages = await read_outbox(state.db)
    return HTMLResponse(render("admin/dev_outbox.html", messages=messages))
