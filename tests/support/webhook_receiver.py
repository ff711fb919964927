"""A webhook receiver for tests: an aiohttp server on a free local port that verifies every
request it gets with the ``standardwebhooks`` package (a client no one here wrote) and
answers what the test scripted (a status, a redirect, or a hang)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any] | None  # verified and parsed; None when verification failed
    error: str | None


@dataclass
class Receiver:
    url: str
    secret: str | None = None  # set once the endpoint exists
    # Scripted answers, first to last; then `default`. An int is a status; "hang" never
    # answers; "redirect" is a 302 to elsewhere.
    script: list[int | str] = field(default_factory=list)
    default: int | str = 204
    requests: list[Received] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def verified(self) -> list[dict[str, Any]]:
        """The verified payloads; fails the test on any request that did not verify."""
        bad = [r.error for r in self.requests if r.error is not None]
        assert not bad, f"signatures that did not verify: {bad}"
        return [r.payload for r in self.requests if r.payload is not None]

    def types(self) -> list[str]:
        return [p["type"] for p in self.verified()]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        async def enough() -> None:
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(enough(), timeout)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        headers = {k.lower(): v for k, v in request.headers.items()}
        payload: dict[str, Any] | None = None
        error: str | None = None
        try:
            assert self.secret is not None, "the receiver has no secret yet"
            payload = Webhook(self.secret).verify(body, headers)
            assert json.loads(body) == payload
        except (WebhookVerificationError, AssertionError) as exc:
            error = f"{type(exc).__name__}: {exc}"
        self.requests.append(Received(headers, body, payload, error))
        self.arrived.set()
        answer = self.script.pop(0) if self.script else self.default
        if answer == "hang":
            await asyncio.sleep(3600)
        if answer == "redirect":
            return web.Response(status=302, headers={"Location": "https://elsewhere.test/"})
        assert isinstance(answer, int)
        return web.Response(status=answer, text="ok" if answer < 300 else "receiver says no " * 100)


@asynccontextmanager
async def receiver(path: str = "/hook") -> AsyncIterator[Receiver]:
    rec = Receiver(url="")
    app = web.Application()
    app.router.add_post(path, rec._handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert server is not None
    assert server.sockets
    port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
    rec.url = f"http://127.0.0.1:{port}{path}"
    try:
        yield rec
    finally:
        await runner.cleanup()
