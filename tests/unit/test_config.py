"""Configuration: environment variables in, validated ``Settings`` out (or a refusal)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from herald.core import dev_secret
from herald.core.config import (
    Environment,
    ProviderName,
    Settings,
    SmtpTls,
    load_settings,
    redacted,
)
from herald.core.errors import ConfigurationError

GOOD_KEY = "k3Y-" + "x7Qz" * 12  # 52 characters, not a placeholder


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No HERALD_* or DATABASE_URL from the developer's shell; relative paths land in tmp."""
    for name in list(os.environ):
        if name.upper().startswith("HERALD_") or name.upper() == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def production(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A production configuration that is acceptable as it stands."""
    monkeypatch.setenv("HERALD_ENV", "production")
    monkeypatch.setenv("HERALD_SECRET_KEY", GOOD_KEY)
    monkeypatch.setenv("HERALD_BASE_URL", "https://news.herald-demo.org/")
    monkeypatch.setenv("HERALD_DATABASE_URL", "postgresql://herald:pw@db.internal/herald")
    monkeypatch.setenv("HERALD_EMAIL__PROVIDER", "postmark")
    monkeypatch.setenv("HERALD_EMAIL__SENDER", "news@herald-demo.org")
    monkeypatch.setenv("HERALD_EMAIL__POSTMARK__SERVER_TOKEN", "pm-token-1234")
    return monkeypatch


def refusal(**overrides: object) -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(**overrides)
    return caught.value.message


# -- defaults ----------------------------------------------------------------


def test_defaults_suit_local_development(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.env is Environment.DEVELOPMENT
    assert not settings.is_production
    assert settings.email.provider is ProviderName.OUTBOX
    assert settings.sender == "newsletter@localhost"
    assert settings.public_base_url == "http://127.0.0.1:8000"
    assert settings.email.timeout_seconds == 10
    assert settings.email.postmark.base_url == "https://api.postmarkapp.com"
    assert settings.uses_embedded_database
    assert settings.data_dir == Path(".herald")
    assert (tmp_path / ".herald" / "secret_key").is_file()


def test_the_default_base_url_follows_the_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_PORT", "9123")
    settings = load_settings()
    assert settings.port == 9123
    assert settings.public_base_url == "http://127.0.0.1:9123"


def test_an_explicit_base_url_loses_its_trailing_slash(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_BASE_URL", "https://news.herald-demo.org/")
    assert load_settings().public_base_url == "https://news.herald-demo.org"


# -- environment names -------------------------------------------------------


def test_nested_names_use_double_underscores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_EMAIL__PROVIDER", "smtp")
    monkeypatch.setenv("HERALD_EMAIL__SENDER", "news@herald-demo.org")
    monkeypatch.setenv("HERALD_EMAIL__POSTMARK__SERVER_TOKEN", "pm-token")
    monkeypatch.setenv("HERALD_EMAIL__SMTP__HOST", "smtp.herald-demo.org")
    monkeypatch.setenv("HERALD_EMAIL__SMTP__PORT", "2525")
    monkeypatch.setenv("HERALD_EMAIL__SMTP__TLS", "starttls")
    monkeypatch.setenv("HERALD_EMAIL__TIMEOUT_SECONDS", "2.5")
    email = load_settings().email
    assert email.provider is ProviderName.SMTP
    assert email.sender == "news@herald-demo.org"
    assert email.postmark.server_token is not None
    assert email.postmark.server_token.get_secret_value() == "pm-token"
    assert email.smtp.host == "smtp.herald-demo.org"
    assert email.smtp.port == 2525
    assert email.smtp.tls is SmtpTls.STARTTLS
    assert email.timeout_seconds == 2.5


@pytest.mark.parametrize(
    ("raw", "tls"),
    [("true", SmtpTls.TLS), ("0", SmtpTls.NONE), ("TLS", SmtpTls.TLS), ("auto", SmtpTls.AUTO)],
)
def test_smtp_tls_accepts_booleans_and_modes(
    monkeypatch: pytest.MonkeyPatch, raw: str, tls: SmtpTls
) -> None:
    monkeypatch.setenv("HERALD_EMAIL__SMTP__TLS", raw)
    assert load_settings().email.smtp.tls is tls


def test_database_url_is_an_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@db/herald")
    settings = load_settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://u:p@db/herald"
    assert not settings.uses_embedded_database


def test_the_herald_name_wins_over_the_alias(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@other/db")
    monkeypatch.setenv("HERALD_DATABASE_URL", "postgresql://u:p@db/herald")
    settings = load_settings()
    assert settings.database_url is not None
    assert settings.database_url.get_secret_value() == "postgresql://u:p@db/herald"


# -- the development secret key ----------------------------------------------


def test_development_generates_a_private_secret_key_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "state" / "herald"
    monkeypatch.setenv("HERALD_DATA_DIR", str(data_dir))
    first = load_settings()
    key_file = data_dir / "secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert first.secret_key is not None
    key = first.secret_key.get_secret_value()
    assert len(key) >= 32
    assert key_file.read_text().strip() == key

    second = load_settings()
    assert second.secret_key is not None
    assert second.secret_key.get_secret_value() == key


def test_a_start_racing_the_first_one_gets_the_same_key_never_an_empty_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two first starts at once: the second begins while the first is making its key."""
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path / "data"))
    generate = dev_secret.secrets.token_urlsafe
    racer_keys: list[str] = []

    def generate_while_another_start_runs(nbytes: int) -> str:
        if not racer_keys:
            racer_keys.append("racing")  # the racing start itself does not race again
            racer = load_settings().secret_key
            assert racer is not None
            racer_keys[0] = racer.get_secret_value()
        return generate(nbytes)

    monkeypatch.setattr(dev_secret.secrets, "token_urlsafe", generate_while_another_start_runs)
    first = load_settings()
    assert first.secret_key is not None
    key = first.secret_key.get_secret_value()
    assert len(key) >= 32
    assert racer_keys == [key]
    assert (tmp_path / "data" / "secret_key").read_text().strip() == key


@pytest.mark.parametrize("step", ["token_urlsafe", "fsync"])
def test_a_start_that_dies_while_making_the_key_leaves_no_empty_key_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, step: str
) -> None:
    data_dir = tmp_path / "data"
    monkeypatch.setenv("HERALD_DATA_DIR", str(data_dir))
    module = dev_secret.secrets if step == "token_urlsafe" else dev_secret.os
    original = getattr(module, step)

    def fail(*args: object) -> None:
        raise OSError("the disk went away")

    monkeypatch.setattr(module, step, fail)
    with pytest.raises(OSError, match="went away"):
        load_settings()
    monkeypatch.setattr(module, step, original)
    settings = load_settings()
    assert settings.secret_key is not None
    assert len(settings.secret_key.get_secret_value()) >= 32
    assert [p.name for p in data_dir.iterdir()] == ["secret_key"], "no temporary file left"


def test_an_empty_secret_key_file_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    key_file = tmp_path / "secret_key"
    key_file.write_text("\n")
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path))
    message = refusal()
    assert str(key_file) in message
    assert "empty" in message


def test_a_given_secret_key_is_used_and_nothing_is_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HERALD_SECRET_KEY", GOOD_KEY)
    settings = load_settings()
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == GOOD_KEY
    assert not (tmp_path / "data" / "secret_key").exists()


def test_an_empty_secret_key_counts_as_unset_in_development(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """``HERALD_SECRET_KEY=`` (as compose files often pass it) must not sign with ''."""
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HERALD_SECRET_KEY", "")
    settings = load_settings()
    assert settings.secret_key is not None
    assert len(settings.secret_key.get_secret_value()) >= 32


# -- production refusals -----------------------------------------------------


def test_a_complete_production_configuration_loads(production: pytest.MonkeyPatch) -> None:
    settings = load_settings()
    assert settings.is_production
    assert settings.public_base_url == "https://news.herald-demo.org"
    assert settings.sender == "news@herald-demo.org"


@pytest.mark.parametrize("key", [None, "", "changeme", "secret", "short-but-random-7f3a"])
def test_production_refuses_a_missing_or_weak_secret_key(
    production: pytest.MonkeyPatch, key: str | None
) -> None:
    if key is None:
        production.delenv("HERALD_SECRET_KEY")
    else:
        production.setenv("HERALD_SECRET_KEY", key)
    assert "HERALD_SECRET_KEY" in refusal()


def test_production_refuses_a_missing_base_url(production: pytest.MonkeyPatch) -> None:
    production.delenv("HERALD_BASE_URL")
    assert "HERALD_BASE_URL must be set" in refusal()


@pytest.mark.parametrize(
    "url", ["https://example.com", "https://news.example.org", "http://herald.invalid"]
)
def test_production_refuses_a_placeholder_base_url(
    production: pytest.MonkeyPatch, url: str
) -> None:
    production.setenv("HERALD_BASE_URL", url)
    assert "placeholder" in refusal()


def test_production_refuses_a_missing_sender_for_a_real_provider(
    production: pytest.MonkeyPatch,
) -> None:
    production.delenv("HERALD_EMAIL__SENDER")
    assert "HERALD_EMAIL__SENDER" in refusal()


def test_production_refuses_postmark_without_a_token(production: pytest.MonkeyPatch) -> None:
    production.delenv("HERALD_EMAIL__POSTMARK__SERVER_TOKEN")
    assert "HERALD_EMAIL__POSTMARK__SERVER_TOKEN" in refusal()


def test_every_production_problem_is_listed_at_once(production: pytest.MonkeyPatch) -> None:
    production.delenv("HERALD_SECRET_KEY")
    production.delenv("HERALD_BASE_URL")
    message = refusal()
    assert "HERALD_SECRET_KEY" in message
    assert "HERALD_BASE_URL" in message


def test_smtp_needs_a_host_in_any_environment() -> None:
    assert "HERALD_EMAIL__SMTP__HOST" in refusal(email={"provider": "smtp"})


# -- invalid values ----------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "field"),
    [
        ("HERALD_ENV", "staging", "env"),
        ("HERALD_PORT", "abc", "port"),
        ("HERALD_PORT", "70000", "port"),
        ("HERALD_BASE_URL", "news.herald-demo.org", "base_url"),
        ("HERALD_EMAIL__PROVIDER", "sendgrid", "email.provider"),
        ("HERALD_EMAIL__SMTP__PORT", "smtp", "email.smtp.port"),
        ("HERALD_LOG_LEVEL", "verbose", "log_level"),
    ],
)
def test_an_invalid_value_is_refused_naming_the_field(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, field: str
) -> None:
    monkeypatch.setenv(variable, value)
    message = refusal()
    assert message.startswith("invalid configuration")
    assert f"\n  {field}: " in message


# -- redaction ---------------------------------------------------------------


def test_redacted_hides_every_secret_and_keeps_the_rest(production: pytest.MonkeyPatch) -> None:
    production.setenv("HERALD_DATABASE_URL", "postgresql://herald:db-pass-9q@db.internal:5432/h")
    production.setenv("HERALD_EMAIL__SMTP__HOST", "smtp.herald-demo.org")
    production.setenv("HERALD_EMAIL__SMTP__USERNAME", "mailer")
    production.setenv("HERALD_EMAIL__SMTP__PASSWORD", "smtp-pass-4z")
    data = redacted(load_settings())
    dumped = json.dumps(data)
    for secret in (GOOD_KEY, "pm-token-1234", "smtp-pass-4z", "db-pass-9q"):
        assert secret not in dumped
    assert data["secret_key"] == "**********"
    assert data["email"]["postmark"]["server_token"] == "**********"
    assert data["email"]["smtp"]["password"] == "**********"
    assert data["database_url"] == "postgresql://herald:**********@db.internal:5432/h"
    assert data["email"]["smtp"]["host"] == "smtp.herald-demo.org"
    assert data["email"]["smtp"]["username"] == "mailer"
    assert data["base_url"] == "https://news.herald-demo.org"
    assert data["sender"] == "news@herald-demo.org"
    assert data["env"] == "production"


def test_redacted_names_the_embedded_database_when_no_url_is_set() -> None:
    assert redacted(Settings())["database_url"] == "(embedded Postgres)"


def test_redacted_hides_a_password_given_as_a_url_parameter() -> None:
    """libpq and asyncpg both read ``?password=`` from a DSN; it is as secret as user:pw@."""
    settings = Settings(database_url="postgresql://herald@db.internal/h?password=qp-secret-7")
    assert "qp-secret-7" not in json.dumps(redacted(settings))
