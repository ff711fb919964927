"""Flash messages: set before a redirect, shown once on the next page, then gone.

They travel in a short-lived signed cookie (not the session), so they also work
for anonymous visitors — "Authentication failed" is shown to someone who has no
session yet. The signature stops a third party from planting messages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from herald.core.config import Settings
from herald.core.signing import sign, unsign
from herald.web.cookies import FLASH_COOKIE, clear_cookie, set_cookie

Level = Literal["info", "error"]
_PURPOSE = "flash"
MAX_AGE_SECONDS = 300


@dataclass(frozen=True, slots=True)
class Flash:
    message: str
    level: Level = "info"


def read(request: Request, settings: Settings) -> list[Flash]:
    raw = request.cookies.get(FLASH_COOKIE)
    if not raw:
        return []
    payload = unsign(settings, _PURPOSE, raw)
    if payload is None:
        return []
    try:
        items = json.loads(payload)
        return [
            Flash(str(item["m"]), "error" if item.get("l") == "error" else "info") for item in items
        ]
    except (ValueError, TypeError, KeyError):
        return []


def write(response: Response, settings: Settings, flashes: list[Flash]) -> None:
    payload = json.dumps([{"m": f.message, "l": f.level} for f in flashes])
    set_cookie(
        response, settings, FLASH_COOKIE, sign(settings, _PURPOSE, payload), max_age=MAX_AGE_SECONDS
    )


def clear(response: Response, settings: Settings) -> None:
    clear_cookie(response, settings, FLASH_COOKIE)


def redirect(
    url: str, settings: Settings, message: str | None = None, level: Level = "info"
) -> RedirectResponse:
    """303 to ``url``, carrying ``message`` to the next page."""
    response = RedirectResponse(url, status_code=303)
    if message:
        write(response, settings, [Flash(message, level)])
    return response
