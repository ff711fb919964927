"""Who is asking: the client's address, as every throttle and session record sees it."""

from __future__ import annotations

from starlette.requests import Request


def client_ip(request: Request) -> str:
    """The address uvicorn reports (a proxy's ``X-Forwarded-For`` only from
    ``HERALD_FORWARDED_ALLOW_IPS``), or ``unknown``."""
    return request.client.host if request.client else "unknown"
