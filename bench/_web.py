"""Herald's web processes (and the one-INSERT comparison app) for the subscribe benchmarks.

A :class:`WebServer` is one server command (``herald serve --workers N``, or granian /
uvicorn serving an app factory) listening on a free loopback port, logging to a file,
and ready once its readiness URL answers 200. It is stopped with SIGTERM (its whole
process group, so supervisor children go too) and killed if it does not exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from _harness import children, worker_env

BENCH = Path(__file__).resolve().parent
SERVERS = ("uvicorn", "granian")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def herald_env(dsn: str, sink_url: str, data_dir: Path, port: int) -> dict[str, str]:
    """Herald's settings for a web process: production mode, the Postmark sink, info logs."""
    env = worker_env(dsn, sink_url, data_dir)
    env.update({"HERALD_ENV": "production", "HERALD_HOST": "127.0.0.1", "HERALD_PORT": str(port)})
    return env


def herald_command(server: str, processes: int, port: int) -> list[str]:
    """Herald as it ships (``herald serve``) or the same app factory under granian."""
    if server == "uvicorn":
        return [sys.executable, "-m", "herald", "serve", "--workers", str(processes)]
    return granian_command("herald.composition.multiprocess:app_from_env", processes, port)


def trivial_command(server: str, processes: int, port: int) -> list[str]:
    """The one-INSERT app (``bench/trivial_app.py``) under the same server."""
    target = "trivial_app:app_from_env"
    if server == "granian":
        return granian_command(target, processes, port)
    return [
        sys.executable,
        "-m",
        "uvicorn",
        target,
        "--factory",
        "--app-dir",
        str(BENCH),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(processes),
        "--no-access-log",
        "--no-server-header",
        "--log-level",
        "warning",
    ]


def granian_command(target: str, processes: int, port: int) -> list[str]:
    return [
        str(Path(sys.executable).parent / "granian"),
        "--interface",
        "asgi",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(processes),
        "--loop",
        "uvloop",
        "--no-ws",
        "--log-level",
        "warning",
        "--working-dir",
        str(BENCH),
        target,
    ]


@dataclass
class WebServer:
    process: asyncio.subprocess.Process
    base_url: str
    log_path: Path

    @property
    def pids(self) -> list[int]:
        """The supervisor and its worker processes (one process when there is no supervisor)."""
        return [self.process.pid, *children(self.process.pid)]

    @property
    def worker_pids(self) -> list[int]:
        """The processes that serve requests: the children, or the process itself."""
        return children(self.process.pid) or [self.process.pid]

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


@contextlib.asynccontextmanager
async def web_server(
    command: list[str],
    env: Mapping[str, str],
    port: int,
    log_path: Path,
    ready_path: str = "/health/ready",
    timeout: float = 60,
) -> AsyncIterator[WebServer]:
    """Start ``command``, wait until ``ready_path`` answers 200 on ``port``, stop it after."""
    with log_path.open("ab") as log:
        process = await asyncio.create_subprocess_exec(
            *command,
            env=dict(env),
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    server = WebServer(process, f"http://127.0.0.1:{port}", log_path)
    try:
        await _wait_ready(server, ready_path, timeout)
        yield server
    finally:
        await _stop(process)


async def _wait_ready(server: WebServer, path: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while True:
            if server.process.returncode is not None:
                raise RuntimeError(f"the web server exited:\n{server.log_tail()}")
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with session.get(
                    server.base_url + path, timeout=aiohttp.ClientTimeout(2)
                ) as r:
                    if r.status == 200:
                        return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the web server was not ready in {timeout} s:\n{server.log_tail()}"
                )
            await asyncio.sleep(0.2)


async def _stop(process: asyncio.subprocess.Process, timeout: float = 30) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        await process.wait()
    # Supervisor children that outlived their parent.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
