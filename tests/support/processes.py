"""Start real ``herald`` processes for end-to-end tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

HERALD = [sys.executable, "-m", "herald"]


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
