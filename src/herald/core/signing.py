"""HMAC helpers keyed by HERALD_SECRET_KEY, one derived key per purpose."""

from __future__ import annotations

import base64
import hmac
from functools import lru_cache

from herald.core.config import Settings


def purpose_key(settings: Settings, purpose: str) -> bytes:
    secret = settings.secret_key.get_secret_value() if settings.secret_key else ""
    return _derive(secret, purpose)


@lru_cache(maxsize=64)
def _derive(secret: str, purpose: str) -> bytes:
    # Cached: the worker signs an unsubscribe link per recipient, and deriving the key
    # each time was ~16 % of a worker's busy time (BENCHMARKS.md, "Where the CPU goes").
    return hmac.digest(secret.encode(), f"herald:{purpose}".encode(), "sha256")


def mac(settings: Settings, purpose: str, message: str) -> str:
    digest = hmac.digest(purpose_key(settings, purpose), message.encode(), "sha256")
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(settings: Settings, purpose: str, payload: str) -> str:
    """``payload`` (URL-safe) plus its MAC: readable by anyone, forgeable by no one."""
    encoded = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    return f"{encoded}.{mac(settings, purpose, encoded)}"


def unsign(settings: Settings, purpose: str, signed: str) -> str | None:
    encoded, _, signature = signed.partition(".")
    if not signature or not hmac.compare_digest(signature, mac(settings, purpose, encoded)):
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
