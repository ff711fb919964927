"""The email section of the configuration (``HERALD_EMAIL__…``): the provider, the sender,
Postmark's and the SMTP relay's settings, Amazon SES's notifications. Kept apart from
:mod:`herald.core.config`, which re-exports every name, so each module stays small."""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import NoDecode

from herald.core.dkim_config import DkimSettings


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
    # The HTTP basic auth credentials Postmark's webhooks must carry (POST
    # /webhooks/postmark); unset: every webhook call is refused (401). Basic auth puts a
    # colon between the two, so the username has none.
    webhook_username: str | None = Field(default=None, max_length=200, pattern=r"^[^:]*$")
    webhook_password: SecretStr | None = None


class SmtpSettings(_Section):
    host: str | None = None
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: SecretStr | None = None
    tls: SmtpTls = SmtpTls.AUTO
    pool_size: int = Field(default=4, ge=1, le=64)
    # VERP (herald.email.verp): each message's envelope sender becomes
    # bounces+<delivery id>.<signature>@domain, so a bounce names its delivery.
    bounce_address: str | None = None

    @field_validator("bounce_address")
    @classmethod
    def _verp_base(cls, value: str | None) -> str | None:
        return None if not value else check_bounce_address(value)

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


# The bounce address's local part leaves room for "+<delivery id (19 digits)>.<16 hex>"
# within RFC 5321's 64 characters.
MAX_BOUNCE_LOCAL_PART = 64 - (1 + 19 + 1 + 16)
_DOT_ATOM = re.compile(r"[a-z0-9!#$%&'*/=?^_`{|}~-]+(?:\.[a-z0-9!#$%&'*/=?^_`{|}~-]+)*")
_HOST = re.compile(
    r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)


def check_bounce_address(address: str) -> str:
    """The VERP base address in lower case, or ``ValueError`` naming what is wrong."""
    local, at, domain = address.strip().lower().rpartition("@")
    if not at or not address.isascii():
        raise ValueError("the bounce address must be a plain ASCII address, local@domain")
    if "+" in local:
        raise ValueError(
            "the bounce address must not contain '+': Herald adds '+<delivery id>.<signature>'"
        )
    if not _DOT_ATOM.fullmatch(local) or len(local) > MAX_BOUNCE_LOCAL_PART:
        raise ValueError(
            f"the bounce address's local part must be a plain dot-atom of at most "
            f"{MAX_BOUNCE_LOCAL_PART} characters (the delivery id and signature take the rest)"
        )
    if len(domain) > 253 or not _HOST.fullmatch(domain):
        raise ValueError("the bounce address's domain is not a valid host name")
    return f"{local}@{domain}"


# arn:<partition>:sns:<region>:<account>:<topic name>
_TOPIC_ARN = re.compile(r"arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?")


class SesSettings(_Section):
    """Amazon SES's notifications through SNS (``POST /webhooks/ses``)."""

    # The SNS topics whose messages are accepted, exact ARNs: a JSON list or separated by
    # commas. None: the endpoint is off (404).
    topic_arns: Annotated[tuple[str, ...], NoDecode] = ()
    # Where a signing certificate (and a SubscribeURL) may come from: https, a host that
    # matches this whole (Python regex), a path ending in .pem (the certificate).
    cert_host_pattern: str = Field(
        default=r"sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?", min_length=1, max_length=200
    )
    # A message signed longer ago is refused as a replay (SNS retries for an hour at most).
    max_age_seconds: float = Field(default=3600.0, ge=60, le=7 * 24 * 3600)
    # A SubscriptionConfirmation of an allowed topic is confirmed by a GET of its
    # SubscribeURL; false: it is only logged, for the operator to confirm.
    confirm_subscriptions: bool = True
    # Sending through SES's SMTP interface: each message names this configuration set and
    # carries its delivery id as the message tag herald_delivery (events find it by that).
    configuration_set: str = Field(default="", pattern=r"^[A-Za-z0-9_-]{0,64}$")

    @field_validator("topic_arns", mode="before")
    @classmethod
    def _split_topics(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError as exc:
                    raise ValueError(f"not a JSON list: {exc}") from exc
            return [part.strip() for part in text.split(",") if part.strip()]
        return value

    @field_validator("topic_arns")
    @classmethod
    def _valid_topics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for arn in value:
            if not _TOPIC_ARN.fullmatch(arn):
                raise ValueError(
                    f"{arn!r} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME)"
                )
        return value

    @field_validator("cert_host_pattern")
    @classmethod
    def _valid_pattern(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a regular expression: {exc}") from exc
        return value


class EmailSettings(_Section):
    provider: ProviderName = ProviderName.OUTBOX
    sender: str | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    postmark: PostmarkSettings = PostmarkSettings()
    smtp: SmtpSettings = SmtpSettings()
    ses: SesSettings = SesSettings()
    dkim: DkimSettings = DkimSettings()  # signing on the SMTP path (herald.email.dkim)
