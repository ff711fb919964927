"""`herald serve --workers N` children: SIGTERM marks the app draining before uvicorn stops."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from types import FrameType, SimpleNamespace
from typing import cast

import pytest

from herald.composition.multiprocess import _drain_on_signals
from herald.web.state import AppState


class FakeState:
    def __init__(self, delay: float = 0.0) -> None:
        self.draining = False
        self.settings = SimpleNamespace(shutdown_delay_seconds=delay)


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


@pytest.mark.usefixtures("restore_handlers")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_marks_draining_then_reaches_uvicorns_handler(sig: signal.Signals) -> None:
    seen: list[tuple[int, bool]] = []
    state = FakeState()

    def uvicorn_handler(signum: int, frame: FrameType | None) -> None:
        seen.append((signum, state.draining))

    signal.signal(sig, uvicorn_handler)
    _drain_on_signals(cast(AppState, state))
    signal.raise_signal(sig)
    assert state.draining is True
    assert seen == [(sig, True)]


@pytest.mark.usefixtures("restore_handlers")
def test_with_a_shutdown_delay_uvicorn_hears_of_it_later_unless_signalled_twice() -> None:
    reached = threading.Event()
    seen: list[int] = []
    state = FakeState(delay=30.0)

    def uvicorn_handler(signum: int, frame: FrameType | None) -> None:
        seen.append(signum)
        reached.set()

    signal.signal(signal.SIGTERM, uvicorn_handler)
    _drain_on_signals(cast(AppState, state))
    signal.raise_signal(signal.SIGTERM)
    assert state.draining is True
    assert seen == []  # serving on, readiness 503, for the delay
    signal.raise_signal(signal.SIGTERM)  # the operator insists: stop now
    assert reached.wait(5)
    assert seen == [signal.SIGTERM]


@pytest.mark.usefixtures("restore_handlers")
def test_the_delayed_stop_reaches_uvicorn_once_the_delay_is_over() -> None:
    reached = threading.Event()
    state = FakeState(delay=0.05)
    signal.signal(signal.SIGTERM, lambda *_: reached.set())
    _drain_on_signals(cast(AppState, state))
    signal.raise_signal(signal.SIGTERM)
    assert reached.wait(5)
