"""Herald's cookies, always set the same safe way.

``HttpOnly`` (no script reads them), ``SameSite=Lax`` (not sent on cross-site
posts), ``Secure`` in production (plain-http localhost keeps working in
development), ``Path=/``.
"""

from __future__ import annotations

from starlette.responses import Response

from herald.core.config import Settings

SESSION_COOKIE = "herald_session"
FLASH_COOKIE = "herald_flash"
CSRF_COOKIE = "herald_csrf"
# Signed proof that this browser signed in before (auth/devices.py); outlives sessions.
DEVICE_COOKIE = "herald_device"


def set_cookie(
    response: Response, settings: Settings, name: str, value: str, *, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=settings.is_production,
    )


def clear_cookie(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(
        name, path="/", httponly=True, samesite="lax", secure=settings.is_production
    )
