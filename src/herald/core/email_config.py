"""The email section of the configuration (``HERALD_EMAIL__…``): the provider, the sender,
Postmark's and the SMTP relay's settings. Kept apart from :mod:`herald.core.config`, which
re-exports every name, so each module stays small."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field, SecretStr, field_validator


class _Section(BaseModel):
    model_config = {"extra": "forbid", "frozen": True}


class ProviderName(StrEnum):
    OUTBOX = "outbox"
    POSTMARK = "postmark"
    SMTP = "smtp"


class SmtpTls(StrEnum):
    """How the SMTP connection is secured.

    ``auto``: implicit TLS on port 465, otherwise STARTTLS, required: a relay that does
    not offer it (or whose offer was stripped in transit) gets neither credentials nor
    mail. ``tls``: implicit TLS.  ``starttls``: STARTTLS, required, on any port.
    ``none``: plain text, never encrypted (only when set explicitly).
    """

    AUTO = "auto"
    TLS = "tls"
    STARTTLS = "starttls"
    NONE = "none"


class PostmarkSettings(_Section):
    base_url: str = "https://api.postmarkapp.com"
    server_token: SecretStr | None = None
    max_connections: int = Field(default=64, ge=1, le=1024)
    # False: one ``POST /email`` per message instead of ``/email/batch`` (500 per call),
    # for Postmark-compatible services without the batch endpoint.
    batch: bool = True


class SmtpSettings(_Section):
    host: str | None = None
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: SmtpTls = SmtpTls.AUTO
    pool_size: int = Field(default=4, ge=1, le=64)

    @field_validator("tls", mode="before")
    @classmethod
    def _boolish_tls(cls, value: Any) -> Any:
        if isinstance(value, bool):
            return SmtpTls.TLS if value else SmtpTls.NONE
        if isinstance(value, str):
            lowered = value.strip().lower()
            if lowered in {"true", "1", "yes", "on"}:
                return SmtpTls.TLS
            if lowered in {"false", "0", "no", "off"}:
                return SmtpTls.NONE
            return lowered
        return value


class EmailSettings(_Section):
    provider: ProviderName = ProviderName.OUTBOX
    sender: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    postmark: PostmarkSettings = PostmarkSettings()
    smtp: SmtpSettings = SmtpSettings()
