"""Rules of admin accounts and credentials. No framework, no database."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import regex

from herald.core.errors import ValidationError

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
API_KEY_PREFIX = "hrld_"
_USERNAME = regex.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class Scope(StrEnum):
    READ = "read"
    WRITE = "write"

    @classmethod
    def parse(cls, raw: str) -> Scope:
        try:
            return cls(raw)
        except ValueError:
            raise ValidationError("Unknown scope.", field="scope") from None

    def allows(self, needed: Scope) -> bool:
        return self is Scope.WRITE or needed is Scope.READ


class Role(StrEnum):
    """What a signed-in user may do: an admin everything; an editor issues and subscribers,
    not users, API keys or settings."""

    ADMIN = "admin"
    EDITOR = "editor"

    @classmethod
    def parse(cls, raw: str) -> Role:
        try:
            return cls(raw.strip().lower())
        except ValueError:
            raise ValidationError("A role is admin or editor.", field="role") from None


@dataclass(frozen=True, slots=True)
class Username:
    value: str

    @classmethod
    def parse(cls, raw: str) -> Username:
        name = raw.strip()
        if not _USERNAME.fullmatch(name):
            raise ValidationError(
                "a username is 1-64 characters: letters, digits and . _ @ - "
                "(starting with a letter or digit)",
                field="username",
            )
        return cls(name)


@dataclass(frozen=True, slots=True)
class UserRecord:
    """An admin account as stored: the password only as its hash."""

    id: uuid.UUID
    username: str
    password_hash: str
    password_changed_at: datetime
    role: Role
    disabled_at: datetime | None


@dataclass(frozen=True, slots=True)
class UserSummary:
    """A row of the users page: never the password hash."""

    id: uuid.UUID
    username: str
    role: Role
    disabled_at: datetime | None
    created_at: datetime
    password_changed_at: datetime
    sessions: int

    @property
    def active(self) -> bool:
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class SessionRecord:
    """A signed-in browser's session (the token itself is never stored, only its digest)."""

    token_hash: bytes
    user_id: uuid.UUID
    username: str
    last_seen_at: datetime
    created_at: datetime
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


class PasswordPolicyError(ValidationError):
    """A new password that breaks the policy (NIST SP 800-63B: length, not reused)."""


def check_new_password(new: str, *, current: str | None = None) -> None:
    """Length 12-128 (counted in characters), and different from the current one."""
    if len(new) < MIN_PASSWORD_LENGTH:
        raise PasswordPolicyError(
            f"The new password is too short: use at least {MIN_PASSWORD_LENGTH} characters.",
            field="new_password",
        )
    if len(new) > MAX_PASSWORD_LENGTH:
        raise PasswordPolicyError(
            f"The new password is too long: use at most {MAX_PASSWORD_LENGTH} characters.",
            field="new_password",
        )
    if current is not None and hmac.compare_digest(new.encode(), current.encode()):
        raise PasswordPolicyError(
            "The new password must be different from the current one.", field="new_password"
        )


def username_key(raw: str) -> str:
    """What login attempts for ``raw`` are counted under: stripped, case-folded, bounded.

    It never starts with whitespace, which keeps it apart from ``device_key``.
    """
    return raw.strip().lower()[:256]


def device_key(nonce: str) -> str:
    """What the failures of one device cookie are counted under (see ``username_key``)."""
    return f" device:{nonce}"


def login_delay(failures: int, limit: int, cap: float) -> float:
    """Seconds a login attempt waits before its password check when the username has
    ``failures`` recent failures (this attempt included) and no device cookie vouches
    for the client: none up to ``limit``, then 1 s, 2 s, 4 s … but never more than ``cap``.

    A delay, not a lock-out: whoever knows the password gets in, however many strangers
    failed before (OWASP, "Blocking Brute Force Attacks"; per-address limits stay hard).
    """
    over = failures - limit
    if over <= 0 or cap <= 0:
        return 0.0
    return min(cap, 2.0 ** min(over - 1, 32))


def generate_password() -> str:
    """A random password for a new account (24 URL-safe characters, ~144 bits)."""
    return secrets.token_urlsafe(18)


def new_session_token() -> str:
    """256 random bits for the session cookie."""
    return secrets.token_urlsafe(32)


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)


def digest(secret: str) -> bytes:
    """What is stored instead of a session token or API key."""
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).digest()
