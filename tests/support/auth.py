"""Helpers for tests of admin authentication: log in through the form, run the CLI."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from herald.auth.passwords import Passwords
from tests.support.processes import HERALD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
NEW_API_KEY = re.compile(r'<code class="secret" id="new-api-key">([^<]+)</code>')
REVOKE_FORM = re.compile(r'action="/admin/api-keys/([0-9a-f-]{36})/revoke"')


def client_at(app: Any, ip: str) -> httpx.AsyncClient:
    """A client whose requests come from ``ip`` (``request.client`` in the app, which is what
    uvicorn puts there after applying HERALD_FORWARDED_ALLOW_IPS to X-Forwarded-For)."""
    transport = httpx.ASGITransport(app=app, client=(ip, 50123))
    return httpx.AsyncClient(transport=transport, base_url="http://herald.test")


def record_pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Replace the login throttle's delay with a recorder: returns the delays asked for."""
    asked: list[float] = []

    async def pause(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr("herald.auth.service.pause", pause)
    return asked


def fast_passwords() -> Passwords:
    """Cheap argon2 parameters: only for setting up users in tests that are not about hashing."""
    return Passwords(memory_kib=256, time_cost=1, parallelism=1, threads=1)


async def csrf_token(client: httpx.AsyncClient, path: str) -> str:
    """GET ``path`` (which sets the anonymous CSRF cookie if needed) and return its form token."""
    response = await client.get(path)
    assert response.status_code == 200, response.text
    match = CSRF.search(response.text)
    assert match, response.text
    return match.group(1)


async def login(
    client: httpx.AsyncClient, username: str, password: str, *, token: str | None = None
) -> httpx.Response:
    """POST /login like a browser would (GET /login first for the CSRF token, unless given)."""
    if token is None:
        token = await csrf_token(client, "/login")
    return await client.post(
        "/login", data={"username": username, "password": password, "csrf_token": token}
    )


async def request_token(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    """The OAuth2 password grant on /api/v1/auth/token."""
    return await client.post(
        "/api/v1/auth/token",
        data={"username": username, "password": password, "grant_type": "password"},
    )


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(frozen=True)
class Completed:
    returncode: int
    stdout: str
    stderr: str


async def run_herald(
    *args: str, env: Mapping[str, str], stdin: str | None = None, timeout: float = 60
) -> Completed:
    """Run ``herald *args`` to completion, feeding ``stdin``; capture both output streams."""
    process = await asyncio.create_subprocess_exec(
        *HERALD,
        *args,
        env=dict(env),
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            process.communicate(stdin.encode() if stdin is not None else None), timeout
        )
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    assert process.returncode is not None
    return Completed(process.returncode, out.decode(), err.decode())
