"""Logging: one structlog pipeline, JSON lines in production, and never a secret."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator

import pytest
import structlog

from herald.core.config import Settings
from herald.core.telemetry import REDACTED, configure_logging, get_logger, redact_secrets

TOUCHED_LOGGERS = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "alembic", "asyncio")


@pytest.fixture
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """configure_logging changes process-wide state: put all of it back afterwards."""
    for name in list(os.environ):
        if name.upper().startswith("HERALD_") or name.upper() == "DATABASE_URL":
            monkeypatch.delenv(name)
    saved = {
        name: (logger.handlers[:], logger.level, logger.propagate, logger.disabled)
        for name in TOUCHED_LOGGERS
        for logger in [logging.getLogger(name)]
    }
    try:
        yield
    finally:
        structlog.reset_defaults()
        structlog.contextvars.clear_contextvars()
        for name, (handlers, level, propagate, disabled) in saved.items():
            logger = logging.getLogger(name)
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled


def json_lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# -- redact_secrets ----------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        "password",
        "new_password",
        "token",
        "subscription_token",
        "server_token",
        "secret_key",
        "authorization",
        "Authorization",
        "cookie",
        "set-cookie",
        "database_url",
        "dsn",
        "csrf_token",
        "api_key",
    ],
)
def test_values_under_sensitive_keys_are_redacted(key: str) -> None:
    event = redact_secrets(None, "info", {"event": "login", key: "hunter2", "user": "ursula"})
    assert event == {"event": "login", key: REDACTED, "user": "ursula"}


def test_other_values_and_absent_secrets_are_left_alone() -> None:
    event = {"event": "sent", "recipient": "u@example.com", "attempts": 3, "password": None}
    assert redact_secrets(None, "info", dict(event)) == event


# -- configure_logging -------------------------------------------------------


def test_json_lines_carry_the_event_but_never_a_password(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_format="json"))
    get_logger("herald.test").info("login attempt", username="ursula", password="hunter2hunter2")
    err = capsys.readouterr().err
    assert "hunter2hunter2" not in err
    [line] = json_lines(err)
    assert line["event"] == "login attempt"
    assert line["username"] == "ursula"
    assert line["password"] == REDACTED
    assert line["level"] == "info"
    assert line["logger"] == "herald.test"
    assert "timestamp" in line


def test_bound_context_appears_in_every_line(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_format="json"))
    with structlog.contextvars.bound_contextvars(request_id="req-123"):
        get_logger("herald.test").warning("slow query")
    [line] = json_lines(capsys.readouterr().err)
    assert line["request_id"] == "req-123"


def test_stdlib_logging_goes_through_the_same_pipeline(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_format="json"))
    logging.getLogger("uvicorn.error").warning("Started server process")
    [line] = json_lines(capsys.readouterr().err)
    assert line["event"] == "Started server process"
    assert line["logger"] == "uvicorn.error"


def test_the_configured_level_filters(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_format="json", log_level="warning"))
    log = get_logger("herald.test")
    log.info("routine")
    log.error("broken")
    assert [line["event"] for line in json_lines(capsys.readouterr().err)] == ["broken"]


def test_production_logs_json_by_default(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(env="production"))
    get_logger("herald.test").info("ready", token="abc")
    [line] = json_lines(capsys.readouterr().err)
    assert line["token"] == REDACTED


def test_development_logs_readable_lines_without_secrets(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_format="console"))
    get_logger("herald.test").info("login attempt", password="hunter2hunter2")
    err = capsys.readouterr().err
    assert "login attempt" in err
    assert "hunter2hunter2" not in err
    with pytest.raises(json.JSONDecodeError):
        json.loads(err.splitlines()[0])


def test_redact_secrets_reaches_into_nested_mappings() -> None:
    event = {"event": "call", "headers": {"Authorization": "Bearer abc", "Accept": "x"}}
    redacted = redact_secrets(None, "info", event)
    assert redacted["headers"] == {"Authorization": REDACTED, "Accept": "x"}
