"""P1 — delivery throughput: one issue to 100,000 confirmed subscribers, three transports.

Real ``herald worker`` processes send one issue through each of

* **Postmark batch**: ``POST /email/batch``, 500 messages per call, to the
  Postmark-compatible sink ``tests/support/postmark_sink.py`` (no off-the-shelf
  Postmark batch sink exists);
* **Postmark single**: ``POST /email``, one message per call
  (``HERALD_EMAIL__POSTMARK__BATCH=false``), to nginx answering with a fixed
  Postmark-shaped reply (``bench/_sinks.py``);
* **SMTP**: Herald's smtp provider (pooled, reused connections) to Postfix's
  ``smtp-sink``, whose own counter cross-checks the number of messages accepted.

Everything else is ``bench/publish.py``'s machinery: an embedded Postgres, subscribers
loaded with COPY into a template, a fresh clone per run, workers started before the
clock, deliveries/s = recipients / (publish commit → last ``sent_at``). Transports are
interleaved run by run. Exits non-zero if any delivery is not sent (or smtp-sink did
not count every message)::

    .venv/bin/python bench/delivery.py            # 100k subscribers, 3 runs per transport
    .venv/bin/python bench/delivery.py --quick    # 10k, 1 run
    .venv/bin/python bench/delivery.py --tracing  # the workers traced, to a collector here
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import platform
import shutil
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg

import _report
from _harness import (
    TRACING_HELP,
    embedded_postgres,
    machine,
    postmark_sink,
    postmaster_pid,
    run_traced,
)
from _sinks import nginx_postmark, smtp_sink
from herald.core.config import Settings
from herald.core.telemetry import configure_logging
from publish import TEMPLATE, Config, Result, log, one_run, prepare_template

BATCH_TARGET = 5_000.0


@dataclass
class Transport:
    key: str
    title: str
    config: Config
    env: dict[str, str]
    sink_label: str
    results: list[Result] = field(default_factory=list)
    accepted: list[int] = field(default_factory=list)


def transports(smtp_host: str, smtp_port: str, smtp_pool: int) -> list[Transport]:
    return [
        Transport(
            "batch",
            "Postmark batch (`/email/batch`, 500/call)",
            Config(workers=3, batch_size=500, concurrency=1, send_concurrency=32),
            {},
            "tests/support/postmark_sink.py",
        ),
        Transport(
            "single",
            "Postmark single (`/email`, 1/call)",
            Config(workers=2, batch_size=500, concurrency=1, send_concurrency=64),
            {
                "HERALD_EMAIL__POSTMARK__BATCH": "false",
                "HERALD_EMAIL__POSTMARK__MAX_CONNECTIONS": "64",
            },
            "nginx",
        ),
        Transport(
            "smtp",
            f"SMTP (pool {smtp_pool} connections/worker)",
            Config(workers=2, batch_size=500, concurrency=1, send_concurrency=32),
            {
                "HERALD_EMAIL__PROVIDER": "smtp",
                "HERALD_EMAIL__SMTP__HOST": smtp_host,
                "HERALD_EMAIL__SMTP__PORT": smtp_port,
                "HERALD_EMAIL__SMTP__TLS": "none",
                "HERALD_EMAIL__SMTP__POOL_SIZE": str(smtp_pool),
            },
            "Postfix smtp-sink",
        ),
    ]


async def main_async(args: argparse.Namespace) -> int:
    configure_logging(Settings(log_level="warning", log_format="console"))
    subscribers = args.subscribers or (10_000 if args.quick else 100_000)
    runs = args.runs or (1 if args.quick else 3)
    work = Path(tempfile.mkdtemp(prefix="herald-bench-work-"))
    failures: list[str] = []
    try:
        with embedded_postgres() as server:
            admin_dsn = server.dsn("postgres")
            template_dsn = server.dsn(TEMPLATE)
            await prepare_template(admin_dsn, template_dsn, subscribers)
            conn = await asyncpg.connect(admin_dsn)
            pg_version = await conn.fetchval("SHOW server_version")
            await conn.close()
            async with contextlib.AsyncExitStack() as stack:
                postmark = await stack.enter_async_context(postmark_sink())
                nginx = await stack.enter_async_context(nginx_postmark())
                smtp = await stack.enter_async_context(smtp_sink())
                chosen = transports(smtp.extra["host"], smtp.extra["port"], args.smtp_pool)
                chosen = [t for t in chosen if not args.only or t.key in args.only]
                urls = {"batch": postmark.base_url, "single": nginx.base_url}
                pids: dict[str, Callable[[], list[int]]] = {
                    "batch": lambda: [postmark.pid],
                    "single": lambda: nginx.pids,
                    "smtp": lambda: [smtp.pid],
                }
                for run in range(1, runs + 1):
                    for transport in chosen:
                        counted_before = smtp.accepted() if transport.key == "smtp" else 0
                        result = await one_run(
                            transport.config,
                            run,
                            server_dsn=template_dsn,
                            admin_dsn=admin_dsn,
                            postmaster=postmaster_pid(server),
                            sink_url=urls.get(transport.key, postmark.base_url),
                            sink_pid=postmark.pid,
                            work=work,
                            py_spy=None,
                            extra_env=transport.env,
                            sink_pids=pids[transport.key],
                        )
                        transport.results.append(result)
                        if transport.key == "smtp":
                            await asyncio.sleep(0.5)  # counters print as sessions end
                            transport.accepted.append(smtp.accepted() - counted_before)
                        log(
                            f"run {run} {transport.key}: {result.deliveries_per_second:,.0f}/s "
                            f"(send {result.send_seconds:.1f} s, RSS "
                            f"{result.worker_peak_rss_mib:.0f} MiB, CPU w/pg/sink "
                            f"{result.cpu_workers}/{result.cpu_postgres}/{result.cpu_sink} s"
                            + (
                                f", smtp-sink accepted {transport.accepted[-1]:,}"
                                if transport.accepted
                                else ""
                            )
                            + ")"
                        )
                        if result.sent != result.recipients:
                            failures.append(
                                f"{transport.key} run {run}: only {result.sent:,} of "
                                f"{result.recipients:,} sent"
                            )
                        if transport.accepted and transport.accepted[-1] < result.recipients:
                            failures.append(
                                f"smtp run {run}: smtp-sink accepted {transport.accepted[-1]:,}"
                                f" of {result.recipients:,}"
                            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    section = render(chosen, subscribers, runs, pg_version, failures)
    _report.write_section(
        "P1",
        section,
        {
            t.key: {"results": [asdict(r) for r in t.results], "smtp_sink_accepted": t.accepted}
            for t in chosen
        },
    )
    print(section)
    for failure in failures:
        log(f"FAILED: {failure}")
    return 1 if failures else 0


def render(
    chosen: list[Transport], subscribers: int, runs: int, pg_version: str, failures: list[str]
) -> str:
    rows = []
    for t in chosen:
        rs = t.results
        cpu = " / ".join(
            f"{statistics.median(getattr(r, f) for r in rs):.1f}"
            for f in ("cpu_workers", "cpu_postgres", "cpu_sink")
        )
        c = t.config
        rows.append(
            f"| {t.title} | {t.sink_label} | {c.workers} x {c.batch_size}, "
            f"≤ {c.send_concurrency} calls/worker | "
            f"{_report.spread([r.deliveries_per_second for r in rs])} | "
            f"{_report.spread([r.send_seconds for r in rs], '.1f')} | "
            f"{max(r.worker_peak_rss_mib for r in rs):.0f} | {cpu} |"
        )
    batch = next((t for t in chosen if t.key == "batch"), None)
    smtp = next((t for t in chosen if t.key == "smtp"), None)
    lines = [
        "### P1 — Delivery throughput: Postmark batch, Postmark single, SMTP",
        "",
        "```sh",
        _report.command_line(),
        "```",
        "",
        f"{subscribers:,} confirmed subscribers (COPY) in an embedded Postgres {pg_version} "
        "(default settings, durable commits); one ~1.8 KB issue rendered per recipient "
        "(name, signed unsubscribe link, List-Unsubscribe headers); real `herald worker` "
        "processes started before the clock; deliveries/s = recipients / (publish commit → "
        f"last `sent_at`); {runs} run(s) per transport, interleaved, each on a fresh clone. "
        "Config: workers x rows claimed per batch, and the most provider calls a worker "
        "keeps in flight (`HERALD_DELIVERY__SEND_CONCURRENCY`). A 500-row claim is one "
        "batch call, so batch workers have one call in flight each; single sends put up to "
        "that many `/email` calls in flight; SMTP sends each message as its own "
        "transaction, bounded by the provider's connection pool. "
        f"Sinks, workers and Postgres share one machine ({machine()}, Python "
        f"{platform.python_version()}), {_report.today()}.",
        "",
        "| transport | sink | workers x batch, calls in flight | deliveries/s | send s "
        "| worker peak RSS MiB | CPU s workers / Postgres / sink |",
        "|---|---|---|---:|---:|---:|---|",
        *rows,
        "",
    ]
    if smtp is not None and smtp.accepted:
        lines.append(
            f"smtp-sink's own counter accepted {', '.join(f'{n:,}' for n in smtp.accepted)} "
            "messages in the SMTP runs (cross-check of the `sent` rows)."
        )
        lines.append("")
    if batch is not None:
        median = statistics.median(r.deliveries_per_second for r in batch.results)
        lines.append(
            f"Target: ≥ {BATCH_TARGET:,.0f} deliveries/s via Postmark batch: "
            f"{median:,.0f}/s — {_report.verdict(median >= BATCH_TARGET)}."
        )
    lines.append(
        "Correctness: every delivery `sent` in every run."
        if not failures
        else "Correctness: **FAILED** — " + "; ".join(failures)
    )
    lines.append("")
    lines.append(finding(chosen))
    return "\n".join(lines)


def finding(chosen: list[Transport]) -> str:
    rates = {t.key: statistics.median(r.deliveries_per_second for r in t.results) for t in chosen}
    worker_cpu_per_1k = {
        t.key: 1000
        * statistics.median(r.cpu_workers for r in t.results)
        / statistics.median(r.recipients for r in t.results)
        for t in chosen
    }
    parts = [
        f"{key} {rate:,.0f}/s ({worker_cpu_per_1k[key]:.2f} worker CPU-s per 1,000)"
        for key, rate in rates.items()
    ]
    return "Finding: " + "; ".join(parts) + "."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10k subscribers, 1 run")
    parser.add_argument("--runs", type=int, help="runs per transport (default 3; quick 1)")
    parser.add_argument("--subscribers", type=int, help="default 100,000 (quick 10,000)")
    parser.add_argument("--smtp-pool", type=int, default=32, help="SMTP connections per worker")
    parser.add_argument(
        "--only", action="append", choices=["batch", "single", "smtp"], help="a subset"
    )
    parser.add_argument("--tracing", action="store_true", help=TRACING_HELP)
    args = parser.parse_args()
    return run_traced(args.tracing, lambda: main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
