"""`herald serve --workers N` children: SIGTERM marks the app draining before uvicorn stops."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from types import FrameType
from typing import cast

import pytest

from herald.composition.multiprocess import _drain_on_signals
from herald.web.state import AppState


class FakeState:
    draining = False


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
