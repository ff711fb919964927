"""Pick the response format a client asked for: JSON, HTML or plain text."""

from __future__ import annotations

from enum import StrEnum

from starlette.requests import Request


class Format(StrEnum):
    JSON = "json"
    HTML = "html"
    TEXT = "text"


def preferred_format(request: Request) -> Format:
    """JSON for API clients (JSON body or Accept), HTML for browsers, text otherwise."""
    accept = request.headers.get("accept", "").lower()
    content_type = request.headers.get("content-type", "").lower()
    if "application/json" in accept and "text/html" not in accept:
        return Format.JSON
    if "text/html" in accept:
        return Format.HTML
    if content_type.startswith("application/json"):
        return Format.JSON
    return Format.TEXT
