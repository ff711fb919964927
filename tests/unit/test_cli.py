"""The command line surface that needs no database (contract §1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from herald.composition.cli.main import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("HERALD_") or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path / "data"))


def test_config_prints_settings_with_secrets_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_DATABASE_URL", "postgresql://herald:hunter2hunter2@db/herald")
    monkeypatch.setenv("HERALD_EMAIL__POSTMARK__SERVER_TOKEN", "pm-token-value")
    monkeypatch.setenv("HERALD_SECRET_KEY", "k" * 40)
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "HERALD_EMAIL__PROVIDER=outbox" in result.output
    assert "HERALD_BASE_URL=http://127.0.0.1:8000" in result.output
    for secret in ("hunter2hunter2", "pm-token-value", "k" * 40):
        assert secret not in result.output
    assert "postgresql://herald:**********@db/herald" in result.output


def test_config_json_is_machine_readable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_PORT", "9123")
    result = runner.invoke(app, ["config", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["base_url"] == "http://127.0.0.1:9123"
    assert data["secret_key"] == "**********"
    assert data["database_url"] == "(embedded Postgres)"


def test_production_without_a_secret_key_refuses_to_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HERALD_ENV", "production")
    monkeypatch.setenv("HERALD_BASE_URL", "https://news.herald-example.org")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2
    assert "HERALD_SECRET_KEY" in result.output


def test_invalid_configuration_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_EMAIL__PROVIDER", "carrier-pigeon")
    result = runner.invoke(app, ["config"])
    assert result.exit_code == 2
    assert "email.provider" in result.output


def test_migrate_without_a_reachable_database_says_so_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HERALD_DATABASE_URL", "postgresql://herald:pw@127.0.0.1:1/herald")
    result = runner.invoke(app, ["migrate"])
    assert result.exit_code == 1, result.output
    assert "herald: cannot connect to the database:" in result.output
    assert "Traceback" not in result.output
    assert "pw@" not in result.output


def test_every_contract_command_exists() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("up", "serve", "worker", "migrate", "users", "outbox", "config"):
        assert command in result.output
    serve_help = runner.invoke(app, ["serve", "--help"]).output
    for option in ("--host", "--port", "--workers"):
        assert option in serve_help
    assert "--concurrency" in runner.invoke(app, ["worker", "--help"]).output
