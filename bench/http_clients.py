"""Which async HTTP client should drive the Postmark provider: aiohttp or httpx?

Both clients send the same realistic ~2 KB Postmark JSON body as single ``POST /email``
calls, with the same number of requests in flight, to the same standalone Postmark sink
(``tests/support/postmark_sink.py``) running in its own process on loopback. Runs are
interleaved (aiohttp, httpx, aiohttp, ...) so that drift on the machine hits both alike,
and each run starts a fresh client whose connection warm-up is not timed.

    .venv/bin/python bench/http_clients.py [--requests 20000] [--concurrency 64]
                                           [--runs 3] [--uvloop] [--sink-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
from collections.abc import Awaitable, Callable, Coroutine
from importlib.metadata import version
from pathlib import Path
from time import perf_counter
from typing import Any

import aiohttp
import httpx

SINK = Path(__file__).resolve().parent.parent / "tests" / "support" / "postmark_sink.py"
HEADERS = {
    "Accept": "application/json",
    "Content-Type": "application/json",
    "X-Postmark-Server-Token": "bench-token",
}
WARMUP_PER_CONNECTION = 4


def postmark_body() -> bytes:
    """One newsletter issue as Herald sends it: ~2 KB of JSON."""
    paragraph = (
        "This week in Herald: faster deliveries, a cleaner admin and fewer surprises. "
        "Thank you for reading, and for every reply you sent us. "
    )
    html = (
        "<html><body><h1>Issue 42: what happened this week</h1>"
        + "".join(f"<p>{paragraph}</p>" for _ in range(7))
        + '<p><a href="https://news.herald.test/unsubscribe?token=abc">Unsubscribe</a></p>'
        "</body></html>"
    )
    text = "Issue 42: what happened this week\n\n" + "\n\n".join([paragraph] * 3)
    message = {
        "From": "Herald Newsletter <newsletter@herald.test>",
        "To": "reader.number.1234@example.test",
        "Subject": "Issue 42: what happened this week",
        "HtmlBody": html,
        "TextBody": text,
        "Headers": [
            {
                "Name": "List-Unsubscribe",
                "Value": "<https://news.herald.test/subscriptions/unsubscribe?token="
                "4f2b8c1e9d7a6b5c4d3e2f1a0b9c8d7e>",
            },
            {"Name": "List-Unsubscribe-Post", "Value": "List-Unsubscribe=One-Click"},
        ],
    }
    return json.dumps(message, separators=(",", ":")).encode()


async def drive(send: Callable[[], Awaitable[None]], total: int, concurrency: int) -> float:
    """Seconds to complete ``total`` sends with ``concurrency`` of them in flight."""
    remaining = total

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await send()

    started = perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return perf_counter() - started


async def run_aiohttp(url: str, body: bytes, total: int, concurrency: int) -> float:
    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(connector=connector, headers=HEADERS, timeout=timeout) as s:

        async def send() -> None:
            async with s.post(url, data=body) as response:
                await response.read()
                if response.status != 200:
                    raise RuntimeError(f"aiohttp got HTTP {response.status}")

        await drive(send, concurrency * WARMUP_PER_CONNECTION, concurrency)
        return await drive(send, total, concurrency)


async def run_httpx(url: str, body: bytes, total: int, concurrency: int) -> float:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, headers=HEADERS, timeout=30) as client:

        async def send() -> None:
            response = await client.post(url, content=body)
            if response.status_code != 200:
                raise RuntimeError(f"httpx got HTTP {response.status_code}")

        await drive(send, concurrency * WARMUP_PER_CONNECTION, concurrency)
        return await drive(send, total, concurrency)


CLIENTS: dict[str, Callable[[str, bytes, int, int], Coroutine[Any, Any, float]]] = {
    "aiohttp": run_aiohttp,
    "httpx": run_httpx,
}


def start_sink() -> tuple[subprocess.Popen[str], str]:
    sink = subprocess.Popen(
        [sys.executable, str(SINK), "--port", "0", "--token", HEADERS["X-Postmark-Server-Token"]],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert sink.stdout is not None
    line = sink.stdout.readline().strip()
    if not line.startswith("READY "):
        sink.kill()
        raise SystemExit(f"the sink did not start: {line!r}")
    return sink, line.removeprefix("READY ")


def run_once(
    name: str, url: str, body: bytes, total: int, concurrency: int, *, uvloop: bool
) -> float:
    coroutine = CLIENTS[name](url, body, total, concurrency)
    if uvloop:
        import uvloop as uv

        return uv.run(coroutine)
    return asyncio.run(coroutine)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--uvloop", action="store_true", help="run the clients on uvloop")
    parser.add_argument("--sink-url", help="use a sink already running there")
    args = parser.parse_args()

    sink, base = (None, args.sink_url) if args.sink_url else start_sink()
    url = f"{base.rstrip('/')}/email"
    body = postmark_body()
    rates: dict[str, list[float]] = {name: [] for name in CLIENTS}
    try:
        for run in range(1, args.runs + 1):
            for name in CLIENTS:
                elapsed = run_once(
                    name, url, body, args.requests, args.concurrency, uvloop=args.uvloop
                )
                rates[name].append(args.requests / elapsed)
                print(f"run {run} {name:8} {rates[name][-1]:9,.0f} req/s", file=sys.stderr)
    finally:
        if sink is not None:
            sink.terminate()
            sink.wait(timeout=10)

    loop = "uvloop" if args.uvloop else "asyncio"
    print(
        f"POST /email x {args.requests:,} ({len(body):,} B JSON), {args.concurrency} in flight, "
        f"{args.runs} runs, {loop} loop, Python {platform.python_version()}"
    )
    print(f"{'client':<16} {'median req/s':>12} {'min-max req/s':>20}")
    for name, values in rates.items():
        label = f"{name} {version(name)}"
        spread = f"{min(values):,.0f}-{max(values):,.0f}"
        print(f"{label:<16} {statistics.median(values):>12,.0f} {spread:>20}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
