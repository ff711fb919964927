"""Device cookies: a browser's proof that it signed in as a user before.

OWASP's answer to lock-out abuse ("Slow Down Online Guessing Attacks with Device
Cookies"): a browser that once signed in successfully keeps a signed cookie naming the
user; its attempts for that user skip the username's throttle (a stranger's failures
cannot keep it out) and are limited by the cookie's own failures instead, so a stolen
cookie is no licence to guess. The cookie carries no authority: it is not a session,
and without the password it opens nothing.

Format: ``sign("1|<user id>|<nonce>|<issued, unix seconds>")`` with a key derived from
HERALD_SECRET_KEY for this purpose alone (``core/signing``). A new one is issued at
every successful sign-in; it lasts a year and survives logging out.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass

from herald.auth.domain import device_key
from herald.core.config import Settings
from herald.core.signing import sign, unsign

PURPOSE = "device-cookie"
VERSION = "1"
MAX_AGE_SECONDS = 365 * 24 * 3600
# Processes' clocks may disagree a little; a cookie "issued" further ahead is refused.
CLOCK_SKEW_SECONDS = 300
MAX_COOKIE_LENGTH = 512


@dataclass(frozen=True, slots=True)
class Device:
    user_id: uuid.UUID
    nonce: str
    issued_at: int

    @property
    def failure_key(self) -> str:
        """What this device's failed sign-ins are counted under."""
        return device_key(self.nonce)


def issue(settings: Settings, user_id: uuid.UUID, *, now: float | None = None) -> str:
    """A fresh device cookie value for ``user_id``."""
    issued = int(time.time() if now is None else now)
    nonce = secrets.token_urlsafe(16)
    return sign(settings, PURPOSE, f"{VERSION}|{user_id}|{nonce}|{issued}")


def recognise(
    settings: Settings, raw: str | None, user_id: uuid.UUID, *, now: float | None = None
) -> Device | None:
    """The device ``raw`` proves for ``user_id``; None when it is absent, forged, expired
    or bound to someone else."""
    if not raw or len(raw) > MAX_COOKIE_LENGTH or not raw.isascii():
        return None
    payload = unsign(settings, PURPOSE, raw)
    if payload is None:
        return None
    parts = payload.split("|")
    if len(parts) != 4 or parts[0] != VERSION or not parts[2]:
        return None
    try:
        owner = uuid.UUID(parts[1])
        issued = int(parts[3])
    except ValueError:
        return None
    age = (time.time() if now is None else now) - issued
    if owner != user_id or not -CLOCK_SKEW_SECONDS <= age <= MAX_AGE_SECONDS:
        return None
    return Device(owner, parts[2], issued)
