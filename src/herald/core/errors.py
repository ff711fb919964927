"""Herald's one error hierarchy.

Domain and data-layer code raise these; nothing here knows about HTTP. The web
layer maps each class to a status code in exactly one place
(``herald.web.errors``), the CLI maps them to exit codes.
"""

from __future__ import annotations


class HeraldError(Exception):
    """Base of every error Herald raises on purpose. ``message`` is safe to show a user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigurationError(HeraldError):
    """The configuration is invalid or unsafe; the process must not start."""


class ValidationError(HeraldError):
    """Input that breaks a domain rule (a bad name, a malformed address, a missing field)."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PayloadTooLarge(HeraldError):
    """A request body over the accepted size."""


class NotFound(HeraldError):
    """The thing asked for does not exist."""


class Unauthorized(HeraldError):
    """Credentials or a token that do not prove anything (unknown, expired, revoked).

    ``challenge`` names the authentication scheme to announce (``WWW-Authenticate``).
    """

    def __init__(self, message: str, *, challenge: str | None = None) -> None:
        super().__init__(message)
        self.challenge = challenge


class LoginRequired(HeraldError):
    """An anonymous visitor asked for a page that needs a logged-in admin."""


class Forbidden(HeraldError):
    """Known, but not allowed: a forged form post, a read-only key on a write route."""


class Conflict(HeraldError):
    """The request conflicts with the current state (e.g. an idempotency key reused differently)."""


class RateLimited(HeraldError):
    """Too many attempts; ``retry_after`` seconds until the next one may succeed."""

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Unavailable(HeraldError):
    """A dependency (the database) cannot serve right now; the client may retry."""

    def __init__(self, message: str, *, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class EmbeddedPostgresError(HeraldError):
    """The embedded Postgres could not be found, initialised or started."""


class UnsupportedMediaType(HeraldError):
    """A request body in a format the route does not read."""


class UnprocessableRequest(HeraldError):
    """Well-formed, but cannot be honoured (an idempotency key reused with other data)."""
