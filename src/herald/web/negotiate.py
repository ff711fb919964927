"""Pick the response format a client asked for: JSON, HTML or plain text."""

from __future__ import annotations

from enum import StrEnum

from starlette.requests import Request

API_PREFIX = "/api/"


class Format(StrEnum):
    JSON = "json"
    HTML = "html"
    TEXT = "text"


def preferred_format(request: Request) -> Format:
    """JSON for API clients (JSON body or Accept, and anything under ``/api/``, whatever
    it accepts: an API client never gets an HTML or text error), HTML for browsers, text
    otherwise."""
    if request.url.path.startswith(API_PREFIX):
        return Format.JSON
    accept = request.headers.get("accept", "").lower()
    content_type = request.headers.get("content-type", "").lower()
    if "application/json" in accept and "text/html" not in accept:
        return Format.JSON
    if "text/html" in accept:
        return Format.HTML
    if content_type.startswith("application/json"):
        return Format.JSON
    return Format.TEXT
