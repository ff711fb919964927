"""Start real ``herald`` processes for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx

from tests.support.queue import wait_until

HERALD = [sys.executable, "-m", "herald"]
ADMIN_LOGIN = re.compile(r"Admin login: admin / (\S+) at ")


def herald_env(**overrides: str) -> dict[str, str]:
    """The current environment without any HERALD_* settings, plus ``overrides``."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("HERALD_") and k != "DATABASE_URL"
    }
    env.update({"PYTHONUNBUFFERED": "1", "HERALD_LOG_FORMAT": "json"})
    env.update(overrides)
    return env


@asynccontextmanager
async def herald_process(
    *args: str, env: Mapping[str, str], log_path: Path
) -> AsyncIterator[asyncio.subprocess.Process]:
    """Run ``herald *args``; on exit, kill it if it is still running."""
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            *HERALD, *args, env=dict(env), stdout=log, stderr=asyncio.subprocess.STDOUT
        )
        try:
            yield process
        finally:
            if process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGKILL)
                await process.wait()


async def wait_exit(process: asyncio.subprocess.Process, timeout: float) -> int:
    return await asyncio.wait_for(process.wait(), timeout=timeout)


async def wait_ready(base_url: str, timeout: float = 90.0) -> None:
    """Return once ``base_url``'s ``/health/ready`` answers 200 (fail after ``timeout``)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=2) as client:

        async def ready() -> bool:
            try:
                return (await client.get("/health/ready")).status_code == 200
            except httpx.TransportError:
                return False

        await wait_until(ready, timeout=timeout, interval=0.2)


async def admin_login(log_path: Path) -> re.Match[str]:
    """The admin login ``herald up`` prints once it serves: readiness can answer before the
    banner is written, so wait for the line, not for readiness alone."""

    def search() -> re.Match[str] | None:
        return ADMIN_LOGIN.search(log_path.read_text())

    await wait_until(lambda: search() is not None, timeout=30)
    found = search()
    assert found
    return found


async def outbox(env: dict[str, str], recipient: str) -> str:
    """What ``herald outbox --to recipient`` prints (the development outbox)."""
    process = await asyncio.create_subprocess_exec(
        *HERALD,
        "outbox",
        "--to",
        recipient,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await process.communicate()
    assert process.returncode == 0, stderr.decode()
    return stdout.decode()
