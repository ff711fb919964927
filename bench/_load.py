"""Load generators for the subscribe benchmarks, and their results.

Two kinds, both sending a *different* email on every request (re-subscribing one address
is another code path, throttled at a few confirmation emails a day):

* :func:`run_wrk` — closed loop (N connections, each sends its next request when the last
  answered) with Debian's ``wrk`` and a Lua script that builds the form body per request
  and prints a JSON summary (requests, errors, percentiles) from its ``done`` hook. For
  the most requests per second (P3).
* the open-loop generator in this file's ``__main__`` — requests go out on a fixed
  schedule (request *i* at ``start + i / rate``) whether or not earlier ones answered,
  over aiohttp on uvloop, in its own process; every request's scheduled time, latency
  (measured from the *scheduled* time, so a stalled server is not hidden by a stalled
  client), status and email are written as JSON lines. For fixed-rate load with
  per-request records (R2, R6). :func:`start_open_loop` / :func:`read_records` use it.

An error is any status outside 2xx, or a socket error / timeout (status 0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

WRK_SCRIPT = r"""
local counter = 0
local threads = {}
local prefix = "p"
local headers = {
  ["Content-Type"] = "application/x-www-form-urlencoded",
  ["Accept"] = "text/html",
}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  prefix = args[1] or "p"
  path = args[2] or "/subscriptions"
end

function request()
  counter = counter + 1
  local body = "name=Reader+" .. counter .. "&email=" .. prefix .. "-" .. tid .. "-" ..
    counter .. "%40example.com"
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50_us": %d, "p90_us": %d, ' ..
    '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.max, latency.mean))
end
"""


@dataclass(frozen=True)
class WrkResult:
    requests: int
    seconds: float
    errors: int  # non-2xx/3xx statuses + socket errors + timeouts
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds


def _wrk_script() -> Path:
    path = Path(tempfile.gettempdir()) / "herald-bench-subscribe.lua"
    if not path.exists() or path.read_text() != WRK_SCRIPT:
        path.write_text(WRK_SCRIPT)
    return path


async def run_wrk(
    base_url: str,
    *,
    path: str,
    prefix: str,
    seconds: float,
    connections: int = 64,
    threads: int = 2,
    timeout_s: float = 10,
) -> WrkResult:
    """Closed-loop POSTs of unique form bodies to ``path`` for ``seconds``."""
    process = await asyncio.create_subprocess_exec(
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={timeout_s:g}s",
        "-s",
        str(_wrk_script()),
        base_url,
        "--",
        prefix,
        path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await process.communicate()
    text = out.decode(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("WRKJSON ")), None)
    if process.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{text}")
    data = json.loads(line.removeprefix("WRKJSON "))
    errors = sum(data[k] for k in ("connect", "read", "write", "status", "timeout"))
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        errors=errors,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        max_ms=data["max_us"] / 1000,
    )


# -- the open-loop generator ------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    at: float  # scheduled send time, seconds since the generator's start (monotonic)
    wall: float  # the same instant as a Unix timestamp, to line up with outside events
    latency: float  # seconds from the scheduled time to the end of the response
    status: int  # HTTP status, 0 for a socket error or timeout
    email: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _text(body: str) -> str:
    """An error page's words without its markup (its <title> and message)."""
    body = re.sub(r"(?is)<(style|script|head)\b.*?</\1>", " ", body)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


async def _open_loop(args: argparse.Namespace) -> list[str]:
    import aiohttp

    total = int(args.rate * args.duration)
    connector = aiohttp.TCPConnector(limit=args.max_connections, force_close=False)
    timeout = aiohttp.ClientTimeout(total=args.timeout)
    headers = {"Accept": args.accept}
    url = args.url.rstrip("/") + args.path
    lines: list[str] = []
    pending: set[asyncio.Task[None]] = set()

    async def one(session: aiohttp.ClientSession, i: int, scheduled: float) -> None:
        email = f"{args.prefix}-{i}@example.com"
        status, detail = 0, ""
        try:
            async with session.post(
                url, data={"name": f"Reader {i}", "email": email}, headers=headers
            ) as response:
                status = response.status
                body = await response.read()
                if not 200 <= status < 300:
                    detail = _text(body.decode(errors="replace"))[:200]
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            detail = f"{type(exc).__name__}: {exc}"[:200]
        latency = time.monotonic() - scheduled
        record = {
            "at": round(scheduled - start, 6),
            "wall": round(wall0 + scheduled - start, 6),
            "latency": round(latency, 6),
            "status": status,
            "email": email,
            "detail": detail,
        }
        lines.append(json.dumps(record) + "\n")

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        start = time.monotonic()
        wall0 = time.time()
        print("STARTED", flush=True)
        for i in range(total):
            scheduled = start + i / args.rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(session, i, scheduled))
            pending.add(task)
            task.add_done_callback(pending.discard)
        if pending:
            await asyncio.wait(pending)
    return lines


@dataclass
class OpenLoop:
    process: asyncio.subprocess.Process
    out: Path

    async def wait(self, timeout: float) -> float:
        """Wait for the end; returns the CPU seconds the generator used."""
        assert self.process.stdout is not None
        out = await asyncio.wait_for(self.process.stdout.read(), timeout)
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if code != 0:
            raise RuntimeError(f"the load generator exited with {code}")
        return float(out.decode().split("CPU", 1)[1])


async def start_open_loop(
    base_url: str,
    *,
    rate: float,
    duration: float,
    prefix: str,
    out: Path,
    path: str = "/subscriptions",
    timeout: float = 30,
    max_connections: int = 256,
) -> OpenLoop:
    """Start the generator in its own process; returns once it has begun sending."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--url",
        base_url,
        "--path",
        path,
        "--rate",
        str(rate),
        "--duration",
        str(duration),
        "--prefix",
        prefix,
        "--out",
        str(out),
        "--timeout",
        str(timeout),
        "--max-connections",
        str(max_connections),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    if line.strip() != b"STARTED":
        raise RuntimeError(f"the load generator did not start: {line!r}")
    return OpenLoop(process, out)


def read_records(path: Path) -> list[Record]:
    with path.open() as handle:
        records = [Record(**json.loads(line)) for line in handle if line.strip()]
    return sorted(records, key=lambda r: r.at)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (``pct`` in 0-100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(pct / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description="open-loop subscribe load at a fixed rate")
    parser.add_argument("--url", required=True)
    parser.add_argument("--path", default="/subscriptions")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, required=True, help="seconds")
    parser.add_argument("--prefix", required=True, help="makes every email unique")
    parser.add_argument("--out", required=True, help="JSON lines, one per request")
    parser.add_argument("--timeout", type=float, default=30)
    parser.add_argument("--max-connections", type=int, default=256)
    parser.add_argument("--accept", default="text/html")
    args = parser.parse_args()
    try:
        import uvloop
    except ImportError:
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        lines = runner.run(_open_loop(args))
    Path(args.out).write_text("".join(lines))
    print(f"CPU {time.process_time():.3f}", flush=True)


if __name__ == "__main__":
    main()
