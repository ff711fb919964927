"""Time limits for CPU-bound Python code running in a thread.

A thread cannot be killed, but CPython can raise an exception in it at its next
bytecode boundary (``PyThreadState_SetAsyncExc``). A watchdog thread does that to
any thread whose current item has run past its deadline: pure-Python loops (a
Jinja template's ``for`` over ``range``) stop within a few milliseconds of the
limit. A single long C call (one huge allocation) is not interrupted; callers keep
those bounded by other means (the template sandbox refuses huge sizes up front).

CPython delivers the exception at the thread's next check, wherever that is: if it
lands in a garbage-collector callback, a finaliser or a weakref callback, CPython
prints "Exception ignored" and the loop goes on. So the watchdog repeats the
interrupt every ``_REFIRE_SECONDS`` for as long as the same item is still running
past its deadline: the limit holds even when an interrupt is swallowed.

Used by :func:`run_each`, which runs a function over items in the *calling* thread
(call it through ``asyncio.to_thread`` or an executor to keep the event loop free)
with a fresh deadline per item, and returns each item's result or exception.
"""

from __future__ import annotations

import ctypes
import threading
import time
from collections.abc import Callable, Iterable
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")

_POLL_SECONDS = 0.02
_REFIRE_SECONDS = 0.1


class TimeLimitExceeded(Exception):
    """Raised inside a thread whose item ran past its time limit."""


class _Slot:
    """One thread's current deadline. The worker thread writes ``deadline`` and ``seq``
    without a lock (plain attribute stores); the watchdog reads them and records which
    item it interrupted in ``fired_seq`` (and when, in ``fired_at``)."""

    __slots__ = ("deadline", "fired_at", "fired_seq", "seq", "thread_id")

    def __init__(self, thread_id: int) -> None:
        self.thread_id = thread_id
        self.deadline = float("inf")
        self.seq = 0
        self.fired_seq = -1
        self.fired_at = 0.0


_slots: dict[int, _Slot] = {}
_lock = threading.Lock()
_watchdog: list[threading.Thread] = []  # the running watchdog, if any


def _set_async_exc(thread_id: int, exc: type[BaseException] | None) -> None:
    ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc) if exc is not None else None
    )


def _watch() -> None:
    idle_since: float | None = None
    while True:
        time.sleep(_POLL_SECONDS)
        now = time.monotonic()
        with _lock:
            if not _slots:
                idle_since = idle_since or now
                if now - idle_since > 5.0:
                    _watchdog.clear()
                    return
                continue
            idle_since = None
            for slot in _slots.values():
                seq = slot.seq
                if slot.deadline >= now:
                    continue
                if slot.fired_seq != seq or now - slot.fired_at >= _REFIRE_SECONDS:
                    # First interrupt for this item, or the last one was swallowed.
                    slot.fired_seq = seq
                    slot.fired_at = now
                    _set_async_exc(slot.thread_id, TimeLimitExceeded)


def _register() -> _Slot:
    slot = _Slot(threading.get_ident())
    with _lock:
        _slots[slot.thread_id] = slot
        if not _watchdog:
            _watchdog.append(threading.Thread(target=_watch, name="herald-timebox", daemon=True))
            _watchdog[0].start()
    return slot


class _Flush(BaseException):
    """Replaces an interrupt that may still be pending, and is caught at once."""


def _unregister(slot: _Slot) -> None:
    with _lock:
        _slots.pop(slot.thread_id, None)  # from here on the watchdog leaves this thread be
    if slot.fired_seq < 0:
        return  # never interrupted: nothing can be pending
    # An interrupt fired but not yet raised must not escape into the caller. Clearing it
    # with PyThreadState_SetAsyncExc(id, NULL) is not enough: CPython still raises its
    # interpreter-wide "async exception pending" signal, and only a thread that *raises*
    # one lowers it again. Left up, every thread handles "pending work" at every check
    # for the rest of the process (a tight loop ran 60 % slower), and a profiler's hook
    # (pyinstrument) spins on it forever. So replace whatever is pending with _Flush and
    # raise it here, in this thread, which lowers the signal.
    try:
        _set_async_exc(slot.thread_id, _Flush)
        for _ in range(1_000_000):  # raised at the first check (a backward jump)
            pass
    except _Flush:
        pass


def run_each(items: Iterable[T], func: Callable[[T], R], seconds: float) -> list[R | BaseException]:
    """``func(item)`` for each item, each limited to ``seconds`` of wall time.

    Returns, in order, each call's result or the exception it raised (a
    :class:`TimeLimitExceeded` for one that ran too long). Blocks the calling thread.
    """
    slot = _register()
    results: list[R | BaseException] = []
    try:
        for item in items:
            while True:
                try:
                    slot.seq += 1
                    slot.deadline = time.monotonic() + seconds
                    outcome: R | BaseException = func(item)
                    slot.deadline = float("inf")
                except TimeLimitExceeded as exc:
                    slot.deadline = float("inf")
                    if slot.fired_seq != slot.seq:
                        continue  # meant for the previous item, which had just finished
                    outcome = exc
                except Exception as exc:  # noqa: BLE001 - every failure is the item's result
                    slot.deadline = float("inf")
                    outcome = exc
                break
            results.append(outcome)
    finally:
        _unregister(slot)
    return results


def run_limited(func: Callable[[], R], seconds: float) -> R:
    """``func()`` limited to ``seconds``; raises what it raised, or TimeLimitExceeded.

    Called from code that already runs under a limit in this thread (a step of
    :func:`run_each`), ``func`` runs under that outer limit: a thread has one deadline."""
    if threading.get_ident() in _slots:
        return func()
    (outcome,) = run_each([None], lambda _: func(), seconds)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome
