"""Transaction pooling: ``HERALD_DB__POOLER`` and ``HERALD_DIRECT_DATABASE_URL``."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from herald.core.config import DatabaseSettings, Pooler, load_settings, redacted
from herald.core.db import server_settings
from herald.core.errors import ConfigurationError

POOLED = "postgresql://herald:pool-pw-3k@pgbouncer.internal:6432/herald"
DIRECT = "postgresql://herald:direct-pw-8m@db.internal:5432/herald"


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.upper().startswith("HERALD_") or name.upper() == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def refusal() -> str:
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    return caught.value.message


def test_no_pooler_by_default() -> None:
    settings = load_settings()
    assert settings.db.pooler is Pooler.NONE
    assert settings.direct_database_url is None
    assert not settings.transaction_pooling


def test_transaction_pooling_with_both_urls(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DB__POOLER", "Transaction")
    monkeypatch.setenv("HERALD_DATABASE_URL", POOLED)
    monkeypatch.setenv("HERALD_DIRECT_DATABASE_URL", DIRECT)
    settings = load_settings()
    assert settings.transaction_pooling
    assert settings.direct_database_url is not None
    assert settings.direct_database_url.get_secret_value() == DIRECT
    data = redacted(settings)
    assert data["direct_database_url"] == "postgresql://herald:**********@db.internal:5432/herald"
    assert data["db"]["pooler"] == "transaction"
    assert "direct-pw-8m" not in json.dumps(data)


def test_transaction_pooling_without_a_direct_url_is_refused_naming_both(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HERALD_DB__POOLER", "transaction")
    monkeypatch.setenv("HERALD_DATABASE_URL", POOLED)
    message = refusal()
    assert "HERALD_DB__POOLER=transaction" in message
    assert "HERALD_DIRECT_DATABASE_URL" in message


def test_transaction_pooling_needs_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DB__POOLER", "transaction")
    assert "HERALD_DATABASE_URL" in refusal()


def test_a_blank_direct_url_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DB__POOLER", "transaction")
    monkeypatch.setenv("HERALD_DATABASE_URL", POOLED)
    monkeypatch.setenv("HERALD_DIRECT_DATABASE_URL", " ")
    assert "HERALD_DIRECT_DATABASE_URL" in refusal()


def test_a_direct_url_without_a_database_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DIRECT_DATABASE_URL", DIRECT)
    assert "HERALD_DIRECT_DATABASE_URL is set without HERALD_DATABASE_URL" in refusal()


def test_an_unknown_pooler_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DB__POOLER", "statement")
    assert "db.pooler" in refusal()


def test_startup_parameters_through_a_transaction_pooler(monkeypatch: pytest.MonkeyPatch) -> None:
    """PgBouncer 1.18 refuses ``statement_timeout`` and
    ``idle_in_transaction_session_timeout`` at connect time; it keeps only the parameters
    it tracks per client."""
    monkeypatch.setenv("HERALD_DB__POOLER", "transaction")
    monkeypatch.setenv("HERALD_DATABASE_URL", POOLED)
    monkeypatch.setenv("HERALD_DIRECT_DATABASE_URL", DIRECT)
    db = load_settings().db
    assert server_settings(db, "herald-web", pooled=True) == {
        "application_name": "herald-web",
        "timezone": "UTC",
    }
    direct = server_settings(db, "herald-worker-listen")
    assert direct["statement_timeout"] == "15000"
    assert direct["idle_in_transaction_session_timeout"] == "60000"
    # without a pooler, the pool sends everything
    assert "statement_timeout" in server_settings(DatabaseSettings(), "x", pooled=True)
