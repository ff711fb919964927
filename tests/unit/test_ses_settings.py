"""HERALD_EMAIL__SES__*: topic ARNs separated by commas or as a JSON list, each checked;
the certificate host pattern must compile; ``herald config`` prints the list as it is set."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from herald.composition.cli.main import app
from herald.core.config import load_settings
from herald.core.errors import ConfigurationError

A = "arn:aws:sns:eu-west-1:123456789012:ses-events"
B = "arn:aws-cn:sns:cn-north-1:123456789012:ses_events.fifo"


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    for key in list(os.environ):
        if key.startswith("HERALD_") or key == "DATABASE_URL":
            monkeypatch.delenv(key)
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path / "data"))


@pytest.mark.parametrize("value", [f"{A},{B}", f" {A} , {B} ,", f'["{A}", "{B}"]'])
def test_topics_by_commas_or_json(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("HERALD_EMAIL__SES__TOPIC_ARNS", value)
    assert load_settings().email.ses.topic_arns == (A, B)


def test_no_topics_by_default() -> None:
    ses = load_settings().email.ses
    assert ses.topic_arns == ()
    assert ses.configuration_set == ""
    assert ses.confirm_subscriptions is True


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("TOPIC_ARNS", "ses-events", "is not an SNS topic ARN"),
        ("TOPIC_ARNS", "arn:aws:sqs:eu-west-1:123456789012:q", "is not an SNS topic ARN"),
        ("TOPIC_ARNS", f'["{A}"', "not a JSON list"),
        ("TOPIC_ARNS", "[1]", "topic_arns"),
        ("CERT_HOST_PATTERN", "sns\\.(", "not a regular expression"),
        ("MAX_AGE_SECONDS", "10", "max_age_seconds"),
        ("CONFIGURATION_SET", "has spaces", "configuration_set"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, problem: str
) -> None:
    monkeypatch.setenv(f"HERALD_EMAIL__SES__{variable}", value)
    with pytest.raises(ConfigurationError, match=problem) as caught:
        load_settings()
    assert "email.ses." in caught.value.message


def test_herald_config_prints_the_topics_as_they_are_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HERALD_EMAIL__SES__TOPIC_ARNS", f'["{A}", "{B}"]')
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert f"HERALD_EMAIL__SES__TOPIC_ARNS={A},{B}\n" in result.output
