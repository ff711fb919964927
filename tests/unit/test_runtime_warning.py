"""A development server that listens beyond this machine says so at start-up (issue 8
item 13); a loopback one, or a production one, stays quiet."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from herald.composition.runtime import exposure_warning, warn_if_exposed
from herald.core.config import Settings


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.20", "herald.lan", "fe80::1"])  # noqa: S104
def test_development_beyond_loopback_is_warned_about(host: str) -> None:
    settings = Settings(env="development", host=host)
    warning = exposure_warning(settings)
    assert warning is not None
    assert host in warning
    for named in ("/dev/outbox", "/docs", "HERALD_ENV=production", "127.0.0.1"):
        assert named in warning
    with capture_logs() as logs:
        warn_if_exposed(settings)
    [line] = logs
    assert line["log_level"] == "warning"
    assert line["host"] == host


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "LOCALHOST"])
def test_development_on_loopback_is_quiet(host: str) -> None:
    settings = Settings(env="development", host=host)
    assert exposure_warning(settings) is None
    with capture_logs() as logs:
        warn_if_exposed(settings)
    assert logs == []


def test_production_is_quiet_on_any_address() -> None:
    settings = Settings(env="production", host="0.0.0.0")  # noqa: S104
    assert settings.is_production
    assert exposure_warning(settings) is None
