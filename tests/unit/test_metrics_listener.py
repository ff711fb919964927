"""The /metrics listener: off unless a port is set, a clear error when the port is taken."""

from __future__ import annotations

import socket

import pytest

from herald.composition.metrics import start_listener
from herald.core.config import Settings, load_settings
from herald.core.errors import ConfigurationError, HeraldError


def test_no_port_no_listener() -> None:
    assert start_listener(Settings(metrics={"port": None})) is None


def test_a_taken_port_is_a_clear_error_not_a_traceback() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HeraldError) as caught:
            start_listener(Settings(metrics={"port": port}))
    assert f"127.0.0.1:{port}" in caught.value.message


def test_the_listener_answers_while_the_caller_is_busy() -> None:
    # A thread of its own: a scrape is answered even when no event loop runs at all.
    server = start_listener(Settings(metrics={"port": 0}))
    assert server is not None
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as conn:
            conn.sendall(b"GET /metrics HTTP/1.0\r\n\r\n")
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
    finally:
        server.close()
    assert reply.startswith(b"HTTP/1.0 200")
    assert b"herald_queue_oldest_ready_age_seconds" in reply


@pytest.mark.parametrize("interval", ["0", "0.01", "-1", "3601"])
def test_a_gauge_interval_that_would_hammer_the_database_is_refused(
    monkeypatch: pytest.MonkeyPatch, interval: str
) -> None:
    monkeypatch.setenv("HERALD_METRICS__GAUGE_INTERVAL_SECONDS", interval)
    with pytest.raises(ConfigurationError) as caught:
        load_settings()
    assert "gauge_interval_seconds" in caught.value.message
