"""P4 — send-path efficiency: Herald's delivery rate over a raw client loop's.

Both push the same number of messages through ``POST /email/batch`` (500 per call) to
the same sink (``tests/support/postmark_sink.py`` in its own process), with the same
number of calls in flight:

* **Herald**: P1's batch configuration — real ``herald worker`` processes claiming
  500-row batches from Postgres, rendering each recipient's email, calling the sink,
  recording the results (``bench/publish.py``'s ``one_run``); one call in flight per
  worker, so ``workers`` calls in flight;
* **raw loop**: one process, a plain aiohttp session and ``workers`` tasks posting
  pre-built bodies back to back — no database, no rendering in the timed part. The
  bodies are built beforehand with Herald's own rendering (``compile_issue``,
  ``issue_email``, the provider's JSON shape), so every call has Herald's size.

Ratio = Herald's median deliveries/s ÷ the raw loop's median messages/s (target ≥ 0.6)::

    .venv/bin/python bench/send_path.py          # 100k messages, 3 runs each
    .venv/bin/python bench/send_path.py --quick  # 10k, 1 run
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import aiohttp
import asyncpg

import _report
from _harness import TOKEN, embedded_postgres, machine, postmark_sink, postmaster_pid
from herald.core.config import Settings
from herald.core.telemetry import configure_logging
from herald.email.postmark import _to_postmark
from herald.issues.rendering import compile_issue, issue_email
from herald.subscriptions.unsubscribe import unsubscribe_url
from publish import ISSUE, TEMPLATE, Config, Result, log, one_run, prepare_template

TARGET = 0.6
CONFIG = Config(workers=3, batch_size=500, concurrency=1, send_concurrency=32)
CHUNK = 500


def build_bodies(messages: int) -> list[bytes]:
    """``/email/batch`` bodies of 500 messages each, rendered as Herald renders them."""
    settings = Settings(base_url="https://news.herald.test", secret_key="b" * 48)
    compiled = compile_issue(ISSUE.title, ISSUE.html, ISSUE.text)
    sender = "Herald Newsletter <newsletter@herald.test>"
    bodies = []
    for start in range(0, messages, CHUNK):
        batch = [
            _to_postmark(
                issue_email(
                    compiled,
                    sender=sender,
                    recipient=f"reader{n}@example.com",
                    name=f"Reader {n}",
                    unsubscribe_url=unsubscribe_url(settings, uuid.uuid4()),
                    base_url=settings.public_base_url,
                )
            )
            for n in range(start, min(messages, start + CHUNK))
        ]
        bodies.append(json.dumps(batch, separators=(",", ":")).encode("ascii"))
    return bodies


async def raw_loop(base_url: str, bodies: list[bytes], in_flight: int) -> tuple[float, int]:
    """Seconds to post every body with ``in_flight`` concurrent callers; messages accepted."""
    headers = {
        "Accept": "application/json",
        "Content-Type": "application/json",
        "X-Postmark-Server-Token": TOKEN,
    }
    queue = list(reversed(bodies))
    accepted = 0

    async def caller(session: aiohttp.ClientSession) -> None:
        nonlocal accepted
        while queue:
            body = queue.pop()
            async with session.post(f"{base_url}/email/batch", data=body) as response:
                answer = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"sink answered {response.status}: {answer[:200]!r}")
                accepted += sum(1 for item in json.loads(answer) if item.get("ErrorCode") == 0)

    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=64), headers=headers
    ) as session:
        # One warm-up call so both sides start with open connections.
        async with session.post(f"{base_url}/email/batch", data=bodies[0]) as response:
            await response.read()
        started = time.perf_counter()
        await asyncio.gather(*(caller(session) for _ in range(in_flight)))
        return time.perf_counter() - started, accepted


async def main_async(args: argparse.Namespace) -> int:
    configure_logging(Settings(log_level="warning", log_format="console"))
    messages = args.messages or (10_000 if args.quick else 100_000)
    runs = args.runs or (1 if args.quick else 3)
    in_flight = CONFIG.workers * CONFIG.concurrency
    work = Path(tempfile.mkdtemp(prefix="herald-bench-work-"))
    herald: list[Result] = []
    raw: list[float] = []
    failures: list[str] = []
    started = time.perf_counter()
    bodies = build_bodies(messages)
    body_kib = statistics.mean(len(b) for b in bodies) / CHUNK / 1024
    log(f"{len(bodies)} raw bodies built in {time.perf_counter() - started:.1f} s")
    try:
        with embedded_postgres() as server:
            admin_dsn = server.dsn("postgres")
            template_dsn = server.dsn(TEMPLATE)
            await prepare_template(admin_dsn, template_dsn, messages)
            conn = await asyncpg.connect(admin_dsn)
            pg_version = await conn.fetchval("SHOW server_version")
            await conn.close()
            async with postmark_sink() as sink:
                for run in range(1, runs + 1):
                    result = await one_run(
                        CONFIG,
                        run,
                        server_dsn=template_dsn,
                        admin_dsn=admin_dsn,
                        postmaster=postmaster_pid(server),
                        sink_url=sink.base_url,
                        sink_pid=sink.pid,
                        work=work,
                        py_spy=None,
                    )
                    herald.append(result)
                    if result.sent != result.recipients:
                        failures.append(f"run {run}: only {result.sent:,} of {messages:,} sent")
                    seconds, accepted = await raw_loop(sink.base_url, bodies, in_flight)
                    if accepted != messages:
                        failures.append(f"raw run {run}: {accepted:,} of {messages:,} accepted")
                    raw.append(messages / seconds)
                    log(
                        f"run {run}: herald {result.deliveries_per_second:,.0f}/s, "
                        f"raw {raw[-1]:,.0f}/s"
                    )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = render(herald, raw, messages, runs, in_flight, body_kib, pg_version, failures)
    _report.write_section("P4", section, {"herald": [asdict(r) for r in herald], "raw": raw})
    print(section)
    for failure in failures:
        log(f"FAILED: {failure}")
    return 1 if failures else 0


def render(
    herald: list[Result],
    raw: list[float],
    messages: int,
    runs: int,
    in_flight: int,
    body_kib: float,
    pg_version: str,
    failures: list[str],
) -> str:
    rates = [r.deliveries_per_second for r in herald]
    ratio = statistics.median(rates) / statistics.median(raw)
    c = CONFIG
    return "\n".join(
        [
            "### P4 — Send-path efficiency: Herald vs a raw client loop",
            "",
            "```sh",
            _report.command_line(),
            "```",
            "",
            f"{messages:,} messages each way, `POST /email/batch` with 500 messages per call "
            "to `tests/support/postmark_sink.py`, "
            f"{in_flight} calls in flight on both sides. Herald: {c.workers} `herald worker` "
            f"processes x {c.batch_size}-row claims from an embedded Postgres {pg_version} "
            "(P1's batch config: claim, render per recipient, call, record). Raw loop: one "
            f"process, aiohttp, {in_flight} tasks posting pre-built bodies (built beforehand "
            f"with Herald's rendering, {body_kib:.2f} KiB of JSON per message), no database. "
            f"{runs} run(s) each, interleaved. {machine()}, Python "
            f"{platform.python_version()}, {_report.today()}.",
            "",
            "| sender | messages/s | CPU s workers / Postgres / sink (Herald, median) |",
            "|---|---:|---|",
            f"| Herald (`herald worker` x {c.workers}) | {_report.spread(rates)} "
            f"| {statistics.median(r.cpu_workers for r in herald):.1f} / "
            f"{statistics.median(r.cpu_postgres for r in herald):.1f} / "
            f"{statistics.median(r.cpu_sink for r in herald):.1f} |",
            f"| raw aiohttp loop, no database | {_report.spread(raw)} | — |",
            "",
            f"Target: Herald ÷ raw ≥ {TARGET:g}: {ratio:.2f} — {_report.verdict(ratio >= TARGET)}.",
            "Correctness: every message sent/accepted in every run."
            if not failures
            else "Correctness: **FAILED** — " + "; ".join(failures),
            "",
            finding(herald, ratio),
        ]
    )


def finding(herald: list[Result], ratio: float) -> str:
    """Where Herald's time goes, from the CPU seconds each process group used."""
    per_1k = {
        name: 1000 * statistics.median(getattr(r, f"cpu_{name}") / r.recipients for r in herald)
        for name in ("workers", "postgres", "sink")
    }
    total = sum(per_1k.values())
    cores = os.cpu_count() or 1
    return (
        f"Finding: Herald reaches {ratio:.0%} of the bare loop's rate. Per 1,000 messages "
        f"it spends {per_1k['workers']:.2f} CPU-s in the workers (claim, render, encode, "
        f"record), {per_1k['postgres']:.2f} in Postgres and {per_1k['sink']:.2f} in the "
        f"sink: {total:.2f} CPU-s, so {cores} cores cap it near "
        f"{1000 * cores / total:,.0f}/s however the work is split; the raw loop pays only "
        "the sink's share."
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10k messages, 1 run")
    parser.add_argument("--runs", type=int, help="default 3 (quick 1)")
    parser.add_argument("--messages", type=int, help="default 100,000 (quick 10,000)")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
