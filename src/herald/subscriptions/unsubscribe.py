"""Unsubscribe tokens: the subscriber id plus an HMAC of it, keyed by the secret key.

Nothing is stored: a token proves itself. It cannot be guessed (128-bit MAC) or
forged without ``HERALD_SECRET_KEY``, and it names one subscriber only.
"""

from __future__ import annotations

import base64
import hmac
import uuid

from herald.core.config import Settings
from herald.core.signing import mac

_PURPOSE = "unsubscribe"
_MAC_CHARS = 22  # 128 bits of base64url
_PATH = "/unsubscribe/one-click"


def make_token(settings: Settings, subscriber_id: uuid.UUID) -> str:
    ident = base64.urlsafe_b64encode(subscriber_id.bytes).rstrip(b"=").decode()
    return f"{ident}.{mac(settings, _PURPOSE, ident)[:_MAC_CHARS]}"


def parse_token(settings: Settings, token: str) -> uuid.UUID | None:
    ident, _, signature = token.partition(".")
    expected = mac(settings, _PURPOSE, ident)[:_MAC_CHARS]
    # As bytes: compare_digest refuses str with non-ASCII characters (a 500 otherwise).
    if len(signature) != _MAC_CHARS or not hmac.compare_digest(
        signature.encode(), expected.encode()
    ):
        return None
    try:
        return uuid.UUID(bytes=base64.urlsafe_b64decode(ident + "=" * (-len(ident) % 4)))
    except ValueError:
        return None


def unsubscribe_url(settings: Settings, subscriber_id: uuid.UUID) -> str:
    # The token is base64url plus a dot: every character is URL-safe as it is.
    token = make_token(settings, subscriber_id)
    return f"{settings.public_base_url}{_PATH}?token={token}"


def inert_unsubscribe_url(settings: Settings) -> str:
    """The unsubscribe link of a copy that goes to no subscriber (a preview, a test, a
    sample reader's welcome): it has the real link's shape and unsubscribes nobody."""
    return f"{settings.public_base_url}{_PATH}?token=preview"


def list_unsubscribe_url(settings: Settings, subscriber_id: uuid.UUID, list_id: uuid.UUID) -> str:
    """The one-click link that leaves one list (a list's welcome email)."""
    return f"{unsubscribe_url(settings, subscriber_id)}&list={list_id}"


def preferences_url(settings: Settings, token: str) -> str:
    """The reader's preference centre: the same signed token (no second HMAC)."""
    return f"{settings.public_base_url}/preferences?token={token}"


def preferences_url_of(unsubscribe_link: str) -> str:
    """The preference centre's URL from an email's unsubscribe URL, by string
    concatenation (once per recipient: no second HMAC): same base, same token, without
    the ``issue``. Empty for a link that is not one of :func:`unsubscribe_url`'s."""
    base, marker, query = unsubscribe_link.partition(_PATH + "?token=")
    if not marker:
        return ""
    return f"{base}/preferences?token={query.partition('&')[0]}"
