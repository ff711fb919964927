"""A Herald app served by a real uvicorn on a free port inside the test's event loop, for
tests that need real HTTP or WebSockets (SSE streams, /admin/live) without a subprocess."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI

from herald.web.state import AppState
from tests.support.database import free_port
from tests.support.queue import wait_until


class _Server(uvicorn.Server):
    """uvicorn without its signal handlers (pytest owns the process)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Served:
    app: FastAPI
    server: _Server
    task: asyncio.Task[None]
    port: int

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/admin/live"

    @property
    def state(self) -> AppState:
        state: AppState = self.app.state.herald
        return state

    async def shut_down(self) -> None:
        """What ``herald serve`` does on SIGTERM: draining first, then uvicorn's exit."""
        self.state.draining = True
        self.server.should_exit = True
        await self.task


@contextlib.asynccontextmanager
async def serve(app: FastAPI, **options: Any) -> AsyncIterator[Served]:
    """Serve ``app`` until the block ends (then shut down as ``herald serve`` would)."""
    port = free_port()
    config = {
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        **options,
        "host": "127.0.0.1",
        "port": port,
        "lifespan": "on",
    }
    server = _Server(uvicorn.Config(app, **config))
    task = asyncio.create_task(server.serve())
    await wait_until(lambda: server.started or task.done(), timeout=30, interval=0.01)
    assert server.started, "uvicorn did not start"
    served = Served(app, server, task, port)
    try:
        yield served
    finally:
        if not task.done():
            await served.shut_down()
