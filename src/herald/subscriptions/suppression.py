"""The suppression list's key for an address: an HMAC of the normalised address.

Every import, API create, form sign-up and fan-out checks an address against
``suppressions`` by this key, so an erased address (whose text Herald forgets) still
blocks a re-import. The HMAC key is ``instance_keys['suppression']`` (migration 0018),
random per instance and independent of ``HERALD_SECRET_KEY``.
"""

from __future__ import annotations

import hashlib
import hmac


def normalise(email: str) -> str:
    """The form every address is compared in: trimmed and lower-cased (the same rule
    as the unique index on ``lower(email)``; no provider-specific folding such as
    removing dots, which would merge distinct mailboxes)."""
    return email.strip().lower()


def address_key(instance_key: bytes, email: str) -> bytes:
    return hmac.digest(instance_key, normalise(email).encode(), hashlib.sha256)
