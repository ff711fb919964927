"""Cross-site request forgery defence for session-authenticated forms.

Two checks, both must pass (a failure is a 403 that changes nothing):

1. **Origin.** A browser says where a post comes from: ``Sec-Fetch-Site:
   cross-site`` or an ``Origin`` that is neither this request's own origin nor
   ``HERALD_BASE_URL``'s is refused.
2. **Synchronizer token.** Every form carries ``csrf_token``, an HMAC (keyed by
   the secret key) of what the visitor holds: the session token when logged in,
   otherwise a random anonymous cookie (so the login form is covered too). An
   attacker can neither read it nor compute it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import Response

from herald.core.config import Settings
from herald.core.errors import Forbidden
from herald.core.signing import mac
from herald.web.cookies import CSRF_COOKIE, SESSION_COOKIE, set_cookie

FORM_FIELD = "csrf_token"
_REJECTED = "This form expired or did not come from this site. Reload the page and try again."


def _binding(request: Request) -> tuple[str, str] | None:
    """(purpose, value) the token is bound to, or None when the visitor holds nothing."""
    if getattr(request.state, "session", None) is not None:
        token = request.cookies.get(SESSION_COOKIE, "")
        return "csrf-session", hashlib.sha256(token.encode()).hexdigest()
    anonymous = request.cookies.get(CSRF_COOKIE)
    if anonymous:
        return "csrf-anon", anonymous
    return None


def token_for(request: Request, settings: Settings, response: Response | None = None) -> str:
    """The token to embed in a form; sets the anonymous cookie on ``response`` if needed."""
    binding = _binding(request)
    if binding is None:
        anonymous = secrets.token_urlsafe(32)
        if response is not None:
            set_cookie(response, settings, CSRF_COOKIE, anonymous)
        request.state.new_csrf_cookie = anonymous
        binding = ("csrf-anon", anonymous)
    return mac(settings, binding[0], binding[1])


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def check(request: Request, settings: Settings, submitted: object) -> None:
    """Raise Forbidden unless the post is same-origin and carries the right token."""
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise Forbidden(_REJECTED)
    origin = request.headers.get("origin")
    if origin is not None:
        allowed = {_origin(settings.public_base_url), _origin(str(request.base_url))}
        if origin.lower() not in allowed:
            raise Forbidden(_REJECTED)
    binding = _binding(request)
    if binding is None or not isinstance(submitted, str) or not submitted:
        raise Forbidden(_REJECTED)
    expected = mac(settings, binding[0], binding[1])
    if not hmac.compare_digest(expected.encode(), submitted.encode()):
        raise Forbidden(_REJECTED)
