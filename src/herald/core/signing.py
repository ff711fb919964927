"""HMAC helpers keyed by HERALD_SECRET_KEY, one derived key per purpose."""

from __future__ import annotations

import base64
import hashlib
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


class Mac:
    """HMAC-SHA256 under one key, for the links a worker signs per recipient (RFC 2104 by
    hand): the key's inner and outer SHA-256 states are prepared once, so a message costs
    two state copies, 0.7 us, where ``hmac.digest`` sets up OpenSSL's HMAC each time (1.7 us)."""

    __slots__ = ("_inner", "_outer")

    def __init__(self, key: bytes) -> None:
        if len(key) > _BLOCK:
            key = hashlib.sha256(key).digest()
        block = key.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))

    def digest(self, message: bytes) -> bytes:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()


_BLOCK = 64  # SHA-256's block size
_IPAD = bytes(b ^ 0x36 for b in range(256))
_OPAD = bytes(b ^ 0x5C for b in range(256))


@lru_cache(maxsize=64)
def keyed(key: bytes) -> Mac:
    return Mac(key)


def mac(settings: Settings, purpose: str, message: str) -> str:
    digest = keyed(purpose_key(settings, purpose)).digest(message.encode())
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(settings: Settings, purpose: str, payload: str) -> str:
    """``payload`` (URL-safe) plus its MAC: readable by anyone, forgeable by no one."""
    encoded = base64.urlsafe_b64encode(payload.encode()).rstrip(b"=").decode()
    return f"{encoded}.{mac(settings, purpose, encoded)}"


def unsign(settings: Settings, purpose: str, signed: str) -> str | None:
    encoded, _, signature = signed.partition(".")
    expected = mac(settings, purpose, encoded)
    # As bytes: compare_digest refuses str with non-ASCII characters (a TypeError, a 500
    # for a garbled cursor or cookie).
    if not signature or not hmac.compare_digest(signature.encode(), expected.encode()):
        return None
    try:
        return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
