"""What every request handler may reach: settings, the database, the draining flag, and
the process-wide parts that features keep here.

The web toolkit knows no feature. A feature's process-wide object (the password hasher
of auth/, the live-progress hub of issues/) is put here by the composition root with
:meth:`AppState.provide` and read back by the feature's own dependency with
:meth:`AppState.part`, keyed by its type: web/ stays free of feature imports and the
reader still gets its precise type.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar, cast

from fastapi import Depends
from starlette.requests import HTTPConnection, Request

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Unavailable

T = TypeVar("T")


@dataclass
class AppState:
    settings: Settings
    db: Database
    _parts: dict[type[Any], object] = field(default_factory=dict, repr=False)
    _draining: bool = field(default=False, repr=False)
    _on_drain: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def draining(self) -> bool:
        """Set once the process starts to stop: readiness 503, live channels end."""
        return self._draining

    @draining.setter
    def draining(self, value: bool) -> None:
        first = value and not self._draining
        self._draining = value
        if first:
            for callback in list(self._on_drain):
                callback()

    def on_drain(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` when ``draining`` is first set (from wherever it is set: a
        signal handler, another thread — the callback must be safe there)."""
        self._on_drain.append(callback)

    def provide(self, kind: type[T], part: T) -> None:
        """Keep ``part`` as this process's ``kind`` (one per type)."""
        self._parts[kind] = part

    def find(self, kind: type[T]) -> T | None:
        """This process's ``kind``, or None when the process does not run one."""
        return cast("T | None", self._parts.get(kind))

    def part(self, kind: type[T]) -> T:
        """This process's ``kind``; 503 (Unavailable) when it does not run one."""
        found = self.find(kind)
        if found is None:
            raise Unavailable(f"{kind.__name__} is not running in this process")
        return found


def state_of(connection: HTTPConnection) -> AppState:
    """The process's state, for code that is not a FastAPI route (plain Starlette routes,
    middleware, error handlers, websockets)."""
    state: AppState = connection.app.state.herald
    return state


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain-function dependency in a worker thread (a thread hop on
    # every request; 7 % of a subscribe in the P3 profile).
    return state_of(request)


State = Annotated[AppState, Depends(get_state)]
