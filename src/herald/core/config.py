"""Herald's configuration: environment variables, validated once at start-up.

Names follow the contract: prefix ``HERALD_``, ``__`` between nesting levels
(``HERALD_EMAIL__SMTP__HOST``). ``DATABASE_URL`` is accepted as an alias of
``HERALD_DATABASE_URL``; behind a pooler in transaction mode (``HERALD_DB__POOLER``),
``HERALD_DIRECT_DATABASE_URL`` names Postgres itself. Development gets safe defaults;
production refuses to start with a missing or placeholder secret key, base URL or sender.
The email section lives in :mod:`herald.core.email_config` (its names are re-exported here).
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from herald.core.dev_secret import development_secret_key
from herald.core.dkim_config import DnsSettings

# Re-exported: the email sections are imported from here too.
from herald.core.email_config import EmailSettings as EmailSettings  # noqa: PLC0414
from herald.core.email_config import PostmarkSettings as PostmarkSettings  # noqa: PLC0414
from herald.core.email_config import ProviderName as ProviderName  # noqa: PLC0414
from herald.core.email_config import SmtpSettings as SmtpSettings  # noqa: PLC0414
from herald.core.email_config import SmtpTls as SmtpTls  # noqa: PLC0414
from herald.core.errors import ConfigurationError

PLACEHOLDER_SECRETS = frozenset(
    {"", "changeme", "change-me", "change_me", "secret", "secret-key", "dev", "development", "xxx"}
)
PLACEHOLDER_HOSTS = frozenset(
    {"example.com", "example.org", "example.net", "your-domain.com", "yourdomain.com", "changeme"}
)
PLACEHOLDER_HOST_SUFFIXES = (".example", ".example.com", ".example.org", ".invalid")
MIN_SECRET_KEY_LENGTH = 32
DEFAULT_PORT = 8000


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class Pooler(StrEnum):
    """What stands between Herald's pool and Postgres.

    ``none``: Postgres itself (or a pooler in session mode). ``transaction``: a pooler
    that hands a server connection to a client for one transaction at a time (PgBouncer
    ``pool_mode = transaction``): no prepared-statement cache, no session state through
    it; LISTEN, migrations and session advisory locks go to ``HERALD_DIRECT_DATABASE_URL``.
    """

    NONE = "none"
    TRANSACTION = "transaction"


class _Section(BaseModel):
    model_config = {"extra": "forbid", "frozen": True}


class DatabaseSettings(_Section):
    pool_min_size: int = Field(default=2, ge=0, le=100)
    pool_max_size: int = Field(default=10, ge=1, le=200)
    connect_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    acquire_timeout_seconds: float = Field(default=3.0, gt=0, le=60)
    statement_timeout_seconds: float = Field(default=15.0, gt=0, le=3600)
    pooler: Pooler = Pooler.NONE

    @field_validator("pooler", mode="before")
    @classmethod
    def _lower_pooler(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @model_validator(mode="after")
    def _sizes(self) -> DatabaseSettings:
        if self.pool_min_size > self.pool_max_size:
            raise ValueError("pool_min_size must not exceed pool_max_size")
        return self


class MetricsSettings(_Section):
    # When set, the processes a command starts serve Prometheus metrics at
    # http://<HERALD_METRICS__HOST>:<port>/metrics, never on the public port.
    port: int | None = Field(default=None, ge=0, le=65535)
    host: str = "127.0.0.1"
    # How often the elected process recomputes the queue and issue gauges. Counting the
    # deliveries still to send costs Postgres ~90 ms per million queued rows, so not
    # more often than once a second.
    gauge_interval_seconds: float = Field(default=15.0, ge=1.0, le=3600)


class EmbeddedSettings(_Section):
    # Postgres refuses to run as root; when Herald runs as root it runs the
    # embedded server as this existing unprivileged user.
    run_as_user: str = "postgres"


class SubscriptionSettings(_Section):
    token_ttl_hours: float = Field(default=24 * 7, gt=0, le=24 * 365)
    # Protects third parties from being flooded by repeated sign-ups of their address.
    max_confirmations_per_day: int = Field(default=5, ge=1, le=1000)


class AuthSettings(_Section):
    session_idle_minutes: float = Field(default=30, gt=0, le=24 * 60)
    session_absolute_hours: float = Field(default=12, gt=0, le=24 * 30)
    # Failed logins in the window after which a client address is refused (429), a device
    # cookie is refused, and other clients of the username are slowed down.
    login_max_failures: int = Field(default=10, ge=1, le=1000)
    login_window_minutes: float = Field(default=15, gt=0, le=24 * 60)
    # The longest delay a username's failures impose on clients without its device cookie
    # (1 s, 2 s, 4 s … up to this); kept under common HTTP client timeouts (httpx: 5 s).
    login_max_delay_seconds: float = Field(default=4, ge=0, le=60)
    jwt_ttl_minutes: float = Field(default=15, gt=0, le=24 * 60)
    # Concurrent argon2 computations per process (each takes 19 MiB and a core).
    hashing_threads: int = Field(default=2, ge=1, le=32)


class NewsletterSettings(_Section):
    name: str = Field(default="", max_length=100)  # "": the sender's display name
    accent: str = Field(default="#3451c7", pattern=r"^#[0-9a-fA-F]{6}$")
    logo_url: str = Field(default="", max_length=2000, pattern=r"^(https?://[^\s/]+\S*)?$")
    footer_address: str = Field(default="", max_length=300)


class DeliverySettings(_Section):
    batch_size: int = Field(default=100, ge=1, le=5000)
    concurrency: int = Field(default=1, ge=1, le=64)
    lease_seconds: float = Field(default=60.0, gt=0, le=3600)
    max_attempts: int = Field(default=8, ge=1, le=100)
    # Deliveries an issue's fan-out queues per transaction (workers, in subscriber order).
    fanout_chunk: int = Field(default=50_000, ge=1, le=1_000_000)
    retry_base_seconds: float = Field(default=10.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=3600.0, gt=0, le=7 * 24 * 3600)
    poll_interval_seconds: float = Field(default=5.0, gt=0, le=300)
    drain_seconds: float = Field(default=20.0, gt=0, le=600)
    send_concurrency: int = Field(default=32, ge=1, le=1024)
    # Messages per second across all workers (0 = unlimited), coordinated in Postgres.
    rate_per_second: float = Field(default=0.0, ge=0, le=100_000)
    # CPU niceness a `herald worker` process gives itself (0-19). Where workers share cores
    # with web processes, 10-19 keeps subscribe latency low while an issue sends (bench R6).
    nice: int = Field(default=0, ge=0, le=19)


class DeliverabilitySettings(_Section):
    """What provider events do to an address (``herald.deliverability.policy``)."""

    # An address that soft-bounced this many times within the window is suppressed (as a
    # hard bounce); hard bounces and complaints suppress at once.
    soft_bounce_limit: int = Field(default=3, ge=1, le=100)
    soft_bounce_window_days: float = Field(default=30.0, gt=0, le=365)


class WebhookSettings(_Section):
    """Outgoing webhooks (``herald.webhooks``): how the workers deliver them."""

    timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    max_attempts: int = Field(default=12, ge=1, le=50)
    retry_base_seconds: float = Field(default=30.0, gt=0, le=3600)
    retry_max_seconds: float = Field(default=6 * 3600.0, gt=0, le=7 * 24 * 3600)
    poll_interval_seconds: float = Field(default=2.0, gt=0, le=300)
    batch_size: int = Field(default=20, ge=1, le=500)
    # An endpoint is disabled once every attempt has failed for this long AND this many
    # attempts in a row have failed (both, so neither a burst nor one slow retry does it).
    disable_after_hours: float = Field(default=24.0, ge=0, le=24 * 30)
    disable_after_failures: int = Field(default=20, ge=1, le=10_000)


class Settings(BaseSettings):
    """The effective configuration of one Herald process."""

    model_config = SettingsConfigDict(
        env_prefix="HERALD_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    env: Environment = Environment.DEVELOPMENT
    database_url: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("HERALD_DATABASE_URL", "DATABASE_URL")
    )
    # Postgres itself, bypassing a pooler: LISTEN, migrations, session advisory locks.
    direct_database_url: SecretStr | None = None
    data_dir: Path = Path(".herald")
    host: str = "127.0.0.1"
    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    base_url: str | None = None
    secret_key: SecretStr | None = None
    # Proxies whose X-Forwarded-For/-Proto are believed (uvicorn's forwarded_allow_ips):
    # the client IP behind them drives login throttling. "*" trusts everyone.
    forwarded_allow_ips: str = "127.0.0.1"
    # After SIGTERM the web server keeps serving this long with /health/ready at 503, so a
    # load balancer polling readiness takes the process out before it stops accepting.
    shutdown_delay_seconds: float = Field(default=0.0, ge=0, le=300)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["auto", "json", "console"] = "auto"

    email: EmailSettings = EmailSettings()
    db: DatabaseSettings = DatabaseSettings()
    embedded: EmbeddedSettings = EmbeddedSettings()
    subscriptions: SubscriptionSettings = SubscriptionSettings()
    auth: AuthSettings = AuthSettings()
    delivery: DeliverySettings = DeliverySettings()
    metrics: MetricsSettings = MetricsSettings()
    newsletter: NewsletterSettings = NewsletterSettings()
    webhooks: WebhookSettings = WebhookSettings()
    deliverability: DeliverabilitySettings = DeliverabilitySettings()
    dns: DnsSettings = DnsSettings()  # the sending-domain check's resolver

    @field_validator("secret_key", "database_url", "direct_database_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        # Compose files often pass `HERALD_SECRET_KEY=`: empty means "not set".
        if isinstance(value, str) and not value.strip():
            return None
        return value

    @field_validator("base_url")
    @classmethod
    def _valid_base_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("HERALD_BASE_URL must be an absolute http(s) URL")
        return value.rstrip("/")

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    @property
    def public_base_url(self) -> str:
        return self.base_url or f"http://127.0.0.1:{self.port or DEFAULT_PORT}"

    @property
    def sender(self) -> str:
        return self.email.sender or "newsletter@localhost"

    @property
    def uses_embedded_database(self) -> bool:
        return self.database_url is None

    @property
    def transaction_pooling(self) -> bool:
        return self.db.pooler is Pooler.TRANSACTION

    def with_overrides(self, **changes: Any) -> Settings:
        """A copy with some top-level fields replaced (used by CLI flags)."""
        return self.model_copy(update=changes)


def _production_problems(settings: Settings) -> list[str]:
    problems: list[str] = []
    key = settings.secret_key.get_secret_value() if settings.secret_key else ""
    if key.strip().lower() in PLACEHOLDER_SECRETS or len(key) < MIN_SECRET_KEY_LENGTH:
        problems.append(
            f"HERALD_SECRET_KEY must be set to a random value of at least "
            f"{MIN_SECRET_KEY_LENGTH} characters (try: python -c "
            f"'import secrets; print(secrets.token_urlsafe(48))')"
        )
    if settings.base_url is None:
        problems.append("HERALD_BASE_URL must be set to the public URL of this Herald")
    else:
        host = (urlsplit(settings.base_url).hostname or "").lower()
        if host in PLACEHOLDER_HOSTS or host.endswith(PLACEHOLDER_HOST_SUFFIXES):
            problems.append(
                f"HERALD_BASE_URL {settings.base_url!r} is a placeholder, not a real URL"
            )
    if settings.email.provider is not ProviderName.OUTBOX and not settings.email.sender:
        problems.append("HERALD_EMAIL__SENDER must be set (the From address of every email)")
    if (
        settings.email.provider is ProviderName.POSTMARK
        and not settings.email.postmark.server_token
    ):
        problems.append(
            "HERALD_EMAIL__POSTMARK__SERVER_TOKEN is required for the postmark provider"
        )
    if settings.email.provider is ProviderName.SMTP and not settings.email.smtp.host:
        problems.append("HERALD_EMAIL__SMTP__HOST is required for the smtp provider")
    return problems


def _configuration_problems(settings: Settings) -> list[str]:
    problems = _production_problems(settings) if settings.is_production else []
    if settings.email.provider is ProviderName.SMTP and not settings.email.smtp.host:
        problems.append("HERALD_EMAIL__SMTP__HOST is required for the smtp provider")
    if settings.email.provider is ProviderName.POSTMARK and not settings.email.postmark.base_url:
        problems.append("HERALD_EMAIL__POSTMARK__BASE_URL must not be empty")
    return sorted(set(problems + _database_problems(settings)))


def _database_problems(settings: Settings) -> list[str]:
    problems: list[str] = []
    if settings.transaction_pooling and settings.database_url is None:
        problems.append(
            "HERALD_DB__POOLER=transaction needs HERALD_DATABASE_URL (the pooler's URL); "
            "the embedded Postgres has no pooler in front"
        )
    elif settings.transaction_pooling and settings.direct_database_url is None:
        problems.append(
            "HERALD_DB__POOLER=transaction needs HERALD_DIRECT_DATABASE_URL: a URL of Postgres "
            "itself, not the pooler, for LISTEN/NOTIFY, migrations and advisory locks, which "
            "do not work through a pooler in transaction mode"
        )
    if settings.direct_database_url is not None and settings.database_url is None:
        problems.append(
            "HERALD_DIRECT_DATABASE_URL is set without HERALD_DATABASE_URL; set both (the "
            "pooler's URL and Postgres' own) or neither (embedded Postgres)"
        )
    return problems


def load_settings(**overrides: Any) -> Settings:
    """Read, complete and validate the configuration; raise ConfigurationError on problems."""
    from pydantic import ValidationError

    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        lines = [
            f"{'.'.join(str(part) for part in err['loc']) or 'settings'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ConfigurationError("invalid configuration:\n  " + "\n  ".join(lines)) from exc
    problems = _configuration_problems(settings)
    if problems:
        raise ConfigurationError("refusing to start:\n  " + "\n  ".join(problems))
    if settings.secret_key is None:
        settings = settings.with_overrides(secret_key=development_secret_key(settings.data_dir))
    return settings


def redacted(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, every secret replaced by ``'**********'``."""

    def walk(value: Any) -> Any:
        if isinstance(value, SecretStr):
            return "**********"
        if isinstance(value, BaseModel):
            return {name: walk(getattr(value, name)) for name in type(value).model_fields}
        if isinstance(value, StrEnum):
            return value.value
        if isinstance(value, Path):
            return str(value)
        return value

    data: dict[str, Any] = walk(settings)
    data["base_url"] = settings.public_base_url
    data["sender"] = settings.sender
    url = settings.database_url.get_secret_value() if settings.database_url else None
    data["database_url"] = _redact_url(url) if url else "(embedded Postgres)"
    direct = settings.direct_database_url
    data["direct_database_url"] = _redact_url(direct.get_secret_value()) if direct else None
    return data


def _redact_url(url: str) -> str:
    """Hide a password in the user-info part and in a ``password=`` query parameter."""
    parts = urlsplit(url)
    if parts.password is not None:
        netloc = parts.netloc.replace(f":{parts.password}@", ":**********@", 1)
        parts = parts._replace(netloc=netloc)
    if parts.query:
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        hidden = [(k, "**********" if k.lower() == "password" else v) for k, v in pairs]
        parts = parts._replace(query=urlencode(hidden, safe="/"))
    return parts.geturl()
