"""Off-the-shelf sinks for the delivery benchmarks, started on free loopback ports.

* :func:`nginx_postmark` — nginx answering Postmark's single-message ``POST /email``
  with a fixed, Postmark-shaped 200 JSON. ``return`` makes nginx read and discard the
  request body (so keep-alive connections stay usable), in C, with no Python in the way.
* :func:`smtp_sink` — Postfix's ``smtp-sink``: accepts SMTP transactions and throws the
  messages away; ``-c`` makes it print running counters, which give the number of
  messages it accepted (a cross-check of the database's ``sent`` count).

Both run in the foreground of their own process with their files in a temp dir, and
are stopped (and the dir removed) on exit. Install them with ``bench/install-tools.sh``.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from _harness import children

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
# What Postmark answers to a good ``POST /email`` (one fixed MessageID: nobody reads it).
POSTMARK_REPLY = (
    '{"ErrorCode":0,"Message":"OK","MessageID":"b7bc2f4a-e38e-4336-af7d-e6c392c2f817",'
    '"SubmittedAt":"2026-11-29T10:00:00.0000000-05:00","To":"reader@example.com"}'
)
NGINX_CONF = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    # A Postmark message is a few KB; the body is read and discarded, never stored.
    client_body_buffer_size 256k;
    client_max_body_size 10m;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    server {{
        listen 127.0.0.1:{port};
        location = /email {{
            default_type application/json;
            return 200 '{reply}';
        }}
        location / {{
            return 404;
        }}
    }}
}}
"""
COUNTER = re.compile(rb"mesg=(\d+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for_port(port: int, process: asyncio.subprocess.Process, what: str) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            if process.returncode is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not start listening on port {port}") from None
            await asyncio.sleep(0.05)
        else:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            return


async def stop(process: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> None:
    if process.returncode is None:
        process.send_signal(sig)
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


@dataclass
class RunningSink:
    process: asyncio.subprocess.Process
    base_url: str
    output: Path | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def pids(self) -> list[int]:
        """The sink's processes (nginx: master and worker), for CPU accounting."""
        return [self.pid, *children(self.pid)]

    def accepted(self) -> int:
        """smtp-sink only: messages accepted so far, from its last ``-c`` counter."""
        if self.output is None:
            raise RuntimeError("this sink does not count messages")
        found = COUNTER.findall(self.output.read_bytes())
        return int(found[-1]) if found else 0


@contextlib.asynccontextmanager
async def nginx_postmark() -> AsyncIterator[RunningSink]:
    """nginx answering ``POST /email`` like Postmark; ``base_url`` is its API root."""
    directory = Path(tempfile.mkdtemp(prefix="herald-bench-nginx-"))
    port = free_port()
    conf = directory / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=directory, port=port, reply=POSTMARK_REPLY))
    process = await asyncio.create_subprocess_exec(
        NGINX,
        "-p",
        str(directory),
        "-c",
        str(conf),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        await wait_for_port(port, process, "nginx")
        yield RunningSink(process, f"http://127.0.0.1:{port}")
    finally:
        await stop(process, signal.SIGQUIT)  # graceful: workers finish, then exit
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.asynccontextmanager
async def smtp_sink(backlog: int = 1024, user: str = "postgres") -> AsyncIterator[RunningSink]:
    """Postfix's smtp-sink; ``extra`` holds its ``host`` and ``port``.

    As root it must drop privileges after binding (``-u``); the unprivileged
    ``postgres`` user exists wherever the embedded Postgres runs.
    """
    directory = Path(tempfile.mkdtemp(prefix="herald-bench-smtp-"))
    port = free_port()
    output = directory / "counters.txt"
    with output.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            SMTP_SINK,
            "-c",
            "-u",
            user,
            "-m",
            "1024",
            f"127.0.0.1:{port}",
            str(backlog),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await wait_for_port(port, process, "smtp-sink")
        yield RunningSink(
            process,
            f"smtp://127.0.0.1:{port}",
            output=output,
            extra={"host": "127.0.0.1", "port": str(port)},
        )
    finally:
        await stop(process)
        shutil.rmtree(directory, ignore_errors=True)
