"""The signed token of a reader's tracking URLs: ``/t/o/{token}.gif`` and ``/t/c/{token}/{n}``.

A token is the issue id and the delivery id (24 bytes, base64url: 32 characters) plus a
128-bit HMAC of them under its own purpose key (``core.signing``): 55 URL-safe characters,
nothing stored. One token per recipient serves the pixel and every link of their copy, so
the worker's render costs one HMAC finish per recipient, whatever the number of links; the
link is the index ``n`` after the token, which the click route looks up in the issue's
stored link list (``issue_tracking.links``). A forged or tampered token is refused before
any query; a genuine token with an ``n`` the issue does not have finds no link: neither
ever redirects anywhere.
"""

from __future__ import annotations

import base64
import hmac
import re
import uuid
from dataclasses import dataclass

from herald.core.config import Settings
from herald.core.signing import keyed, mac, purpose_key

_PURPOSE = "engagement-tracking"
_MAC_CHARS = 22  # 128 bits of base64url
_TOKEN = re.compile(r"[A-Za-z0-9_-]{32}\.[A-Za-z0-9_-]{22}")
OPEN_PATH = "/t/o/"
CLICK_PATH = "/t/c/"


@dataclass(frozen=True, slots=True)
class Tracked:
    """What a valid token names: one delivery of one issue."""

    issue_id: uuid.UUID
    delivery_id: int


class TrackingLinks:
    """One issue's tracking URLs, one token per delivery (the worker's hot path): the key's
    HMAC states and the issue's bytes are prepared once, so a recipient costs one HMAC
    finish and two base64 encodings."""

    def __init__(self, settings: Settings, issue_id: uuid.UUID) -> None:
        self._mac = keyed(purpose_key(settings, _PURPOSE))
        self._issue = issue_id.bytes
        base = settings.public_base_url
        self._open = f"{base}{OPEN_PATH}"
        self._click = f"{base}{CLICK_PATH}"

    def token(self, delivery_id: int) -> str:
        ident = base64.urlsafe_b64encode(self._issue + delivery_id.to_bytes(8, "big"))
        signature = base64.urlsafe_b64encode(self._mac.digest(ident))[:_MAC_CHARS]
        return (ident + b"." + signature).decode()

    def urls(self, delivery_id: int) -> tuple[str, str]:
        """The pixel's URL and the prefix of every link's (``{prefix}/{n}``)."""
        token = self.token(delivery_id)
        return f"{self._open}{token}.gif", f"{self._click}{token}"


def parse_token(settings: Settings, token: str) -> Tracked | None:
    """The delivery a token names, or None when it is not one of ours. The shape is checked
    first: no HMAC for junk, and only ASCII reaches compare_digest."""
    if not _TOKEN.fullmatch(token):
        return None
    ident, _, signature = token.partition(".")
    if not hmac.compare_digest(signature, mac(settings, _PURPOSE, ident)[:_MAC_CHARS]):
        return None
    raw = base64.urlsafe_b64decode(ident)
    delivery_id = int.from_bytes(raw[16:], "big")
    if delivery_id >= 2**63:  # not a bigint: no row has it
        return None
    return Tracked(uuid.UUID(bytes=raw[:16]), delivery_id)
