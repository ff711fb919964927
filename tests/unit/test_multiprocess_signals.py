"""`herald serve --workers N` children: SIGTERM marks the app draining before uvicorn stops,
and uvicorn hears of it only once the live sockets have closed (their 1001 first)."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterator
from types import FrameType, SimpleNamespace
from typing import cast

import pytest

from herald.composition.multiprocess import _drain_on_signals
from herald.core.live import LiveHub
from herald.web.state import AppState


class FakeState:
    def __init__(self, delay: float = 0.0, hub: LiveHub | None = None) -> None:
        self.draining = False
        self.settings = SimpleNamespace(shutdown_delay_seconds=delay)
        self.hub = hub

    def find(self, kind: type[object]) -> object | None:
        return self.hub if kind is LiveHub else None


@pytest.fixture
def restore_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class Uvicorn:
    """uvicorn's signal handler: records the signals and whether the app was draining."""

    def __init__(self, state: FakeState) -> None:
        self.state = state
        self.seen: list[tuple[int, bool]] = []
        self.reached = asyncio.Event()

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.seen.append((signum, self.state.draining))
        self.reached.set()


@pytest.mark.usefixtures("restore_handlers")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
async def test_a_signal_marks_draining_then_reaches_uvicorns_handler(sig: signal.Signals) -> None:
    state = FakeState()
    uvicorn = Uvicorn(state)
    signal.signal(sig, uvicorn)
    _drain_on_signals(cast(AppState, state))
    signal.raise_signal(sig)
    assert state.draining is True
    await asyncio.wait_for(uvicorn.reached.wait(), 5)
    assert uvicorn.seen == [(sig, True)]


@pytest.mark.usefixtures("restore_handlers")
async def test_with_a_shutdown_delay_uvicorn_hears_of_it_later_unless_signalled_twice() -> None:
    state = FakeState(delay=30.0)
    uvicorn = Uvicorn(state)
    signal.signal(signal.SIGTERM, uvicorn)
    _drain_on_signals(cast(AppState, state))
    signal.raise_signal(signal.SIGTERM)
    assert state.draining is True
    await asyncio.sleep(0.05)
    assert uvicorn.seen == []  # serving on, readiness 503, for the delay
    signal.raise_signal(signal.SIGTERM)  # the operator insists: stop now
    await asyncio.wait_for(uvicorn.reached.wait(), 5)
    assert uvicorn.seen == [(signal.SIGTERM, True)]


@pytest.mark.usefixtures("restore_handlers")
async def test_the_delayed_stop_reaches_uvicorn_once_the_delay_is_over() -> None:
    state = FakeState(delay=0.05)
    uvicorn = Uvicorn(state)
    signal.signal(signal.SIGTERM, uvicorn)
    _drain_on_signals(cast(AppState, state))
    signal.raise_signal(signal.SIGTERM)
    await asyncio.wait_for(uvicorn.reached.wait(), 5)
    assert uvicorn.seen == [(signal.SIGTERM, True)]  # once only


@pytest.mark.usefixtures("restore_handlers")
async def test_uvicorn_hears_of_the_signal_once_the_live_sockets_have_closed() -> None:
    hub = LiveHub()
    state = FakeState(hub=hub)
    uvicorn = Uvicorn(state)
    signal.signal(signal.SIGTERM, uvicorn)
    _drain_on_signals(cast(AppState, state))
    closing = asyncio.Event()
    order: list[str] = []

    async def socket() -> None:
        # What admin/live.py does: serve until the subscription ends, then close.
        with hub.subscribe() as subscription:
            await subscription.ended()
            closing.set()
            await asyncio.sleep(0.2)  # a close that takes a while (2,000 of them)
            order.append("1001 sent")

    task = asyncio.create_task(socket())
    await asyncio.sleep(0)
    signal.raise_signal(signal.SIGTERM)
    hub.drain()  # what the draining flag's callback does in the app
    await asyncio.wait_for(closing.wait(), 5)
    await asyncio.wait_for(uvicorn.reached.wait(), 5)
    order.append("uvicorn")
    await task
    assert order == ["1001 sent", "uvicorn"]
    assert hub.open == 0
