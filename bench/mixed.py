"""R6 — subscribe at a fixed rate while a 100k-subscriber issue sends.

Started by the script, on loopback: an embedded Postgres (default settings) with a
template database of N confirmed subscribers loaded with COPY (``bench/publish.py``),
the Postmark-compatible batch sink, and per run, on fresh clones of the template:

1. *alone*: ``publish.one_run`` — K ``herald worker`` processes deliver one issue to the
   N subscribers; the delivery rate with nothing else running;
2. *mixed*: ``herald serve --workers W`` plus the same K workers; the open-loop
   generator (``bench/_load.py``) posts the subscribe form at ``--rate`` req/s with a new
   email each time for ``--seconds``, and the issue is published as the load starts.
   Subscribe latency (from each request's scheduled send time), errors, achieved rate,
   the delivery rate of the issue during the mix, and the CPU used by every group::

    .venv/bin/python bench/mixed.py                 # 100k, 1,000 req/s for 60 s, 3 runs
    .venv/bin/python bench/mixed.py --quick         # 10k, 300 req/s for 15 s, 1 run
    .venv/bin/python bench/mixed.py --worker-nice 10 --web-processes 2 --config 2:500:1

Targets: 0 errors and p99 <= 100 ms for the subscribe requests.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import _report
from _harness import (
    Workers,
    children,
    confirmed_subscribers,
    cpu_seconds,
    embedded_postgres,
    log,
    machine,
    postmark_sink,
    postmaster_pid,
)
from _load import Record, percentile, read_records, start_open_loop
from _web import free_port, herald_command, herald_env, web_server
from herald.core.config import DatabaseSettings, Settings
from herald.core.db import Database
from herald.core.telemetry import configure_logging
from herald.issues.service import IssueService
from publish import ISSUE, TEMPLATE, Config, clone, drop, one_run, prepare_template


@dataclass
class Mixed:
    run: int
    requests: int
    achieved_rate: float
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    recipients: int
    sent: int
    send_seconds: float
    deliveries_per_second: float
    alone_deliveries_per_second: float
    cpu_web: float
    cpu_workers: float
    cpu_postgres: float
    cpu_sink: float
    cpu_generator: float
    wall_seconds: float


async def wait_sent(db: Database, issue_id: uuid.UUID, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    async with db.connection() as conn:
        while (
            await conn.fetchval("SELECT status FROM newsletter_issues WHERE id = $1", issue_id)
            != "sent"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the issue was not sent in time")
            await asyncio.sleep(0.2)


async def mixed_run(
    run: int,
    *,
    template_dsn: str,
    admin_dsn: str,
    postmaster: int,
    sink_url: str,
    sink_pid: int,
    work: Path,
    args: argparse.Namespace,
) -> tuple[Mixed, list[str]]:
    config: Config = args.config
    name = f"herald_mixed_{run}_{uuid.uuid4().hex[:6]}"
    await clone(admin_dsn, name)
    dsn = template_dsn.replace(f"/{TEMPLATE}?", f"/{name}?")
    env = config.env(dsn, sink_url, work / "data")
    workers = Workers(env, work)
    settings = Settings(database_url=dsn, base_url="https://news.herald.test", secret_key="b" * 48)
    db = await Database.open(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=2), "bench")
    port = free_port()
    web_env = herald_env(dsn, sink_url, work / "data", port)
    web_env.update(item.split("=", 1) for item in args.env)
    out = work / f"r6-run{run}.jsonl"
    try:
        await workers.start(config.workers)
        for pid in workers.pids:
            os.setpriority(os.PRIO_PROCESS, pid, args.worker_nice)
        command = herald_command("uvicorn", args.web_processes, port)
        async with web_server(command, web_env, port, work / f"web-{run}.log") as web:
            service = IssueService(db, settings)
            issue_id = await service.create_draft(ISSUE, created_by=None)
            await asyncio.sleep(1)
            pg = children(postmaster)
            groups = [web.pids, workers.pids, pg, [sink_pid]]
            before = [cpu_seconds(g) for g in groups]
            load = await start_open_loop(
                web.base_url,
                rate=args.rate,
                duration=args.seconds,
                prefix=f"r6-{run}-{uuid.uuid4().hex[:6]}",
                out=out,
            )
            async with db.connection() as conn:
                recipients = await confirmed_subscribers(conn)
            started = time.monotonic()
            await service.publish(issue_id)  # the workers queue its deliveries
            async with db.connection() as conn:
                committed_at = await conn.fetchval("SELECT clock_timestamp()")
            await wait_sent(db, issue_id, max(300.0, recipients / 100))
            generator_cpu = await load.wait(args.seconds + 120)
            wall = time.monotonic() - started
            groups[2] = sorted(set(pg) | set(children(postmaster)))
            after = [cpu_seconds(g) for g in groups]
            async with db.connection() as conn:
                row = await conn.fetchrow(
                    "SELECT count(*) FILTER (WHERE status = 'sent') AS sent, "
                    "max(sent_at) AS last FROM deliveries WHERE issue_id = $1",
                    issue_id,
                )
            assert row is not None  # an aggregate always returns a row
            web_tail = web.log_tail(5)
    finally:
        await workers.stop()
        await db.close()
        await drop(admin_dsn, name)
    send_seconds = (row["last"] - committed_at).total_seconds()
    cpu = [round(a - b, 1) for a, b in zip(after, before, strict=True)]
    return summarise(
        run,
        read_records(out),
        args,
        web_tail,
        recipients,
        row["sent"],
        send_seconds,
        cpu,
        generator_cpu,
        wall,
    )


def summarise(
    run: int,
    records: list[Record],
    args: argparse.Namespace,
    web_tail: str,
    recipients: int,
    sent: int,
    send_seconds: float,
    cpu: list[float],
    generator_cpu: float,
    wall: float,
) -> tuple[Mixed, list[str]]:
    latencies = [r.latency for r in records]
    errors = [r for r in records if not r.ok]
    examples = sorted({f"{r.status} {r.detail[:100]}" for r in errors})[:5]
    if errors:
        examples.append("web log tail:\n" + web_tail)
    result = Mixed(
        run=run,
        requests=len(records),
        achieved_rate=round(len(records) / args.seconds, 1),
        errors=len(errors),
        p50_ms=round(percentile(latencies, 50) * 1000, 1),
        p95_ms=round(percentile(latencies, 95) * 1000, 1),
        p99_ms=round(percentile(latencies, 99) * 1000, 1),
        max_ms=round(max(latencies, default=0) * 1000, 1),
        recipients=recipients,
        sent=sent,
        send_seconds=round(send_seconds, 2),
        deliveries_per_second=round(recipients / send_seconds, 1),
        alone_deliveries_per_second=0.0,
        cpu_web=cpu[0],
        cpu_workers=cpu[1],
        cpu_postgres=cpu[2],
        cpu_sink=cpu[3],
        cpu_generator=round(generator_cpu, 1),
        wall_seconds=round(wall, 1),
    )
    return result, examples


def section(results: list[Mixed], args: argparse.Namespace) -> str:
    config: Config = args.config

    def col(name: str, fmt: str = ",.0f") -> str:
        return _report.spread([float(getattr(r, name)) for r in results], fmt)

    errors = sum(r.errors for r in results)
    p99 = statistics.median(r.p99_ms for r in results)
    mixed_rate = statistics.median(r.deliveries_per_second for r in results)
    alone_rate = statistics.median(r.alone_deliveries_per_second for r in results)
    gen_share = statistics.median(r.cpu_generator / r.wall_seconds for r in results)
    extra = f", extra web env {' '.join(args.env)}" if args.env else ""
    return "\n".join(
        [
            "### R6 — Subscribe load while an issue sends",
            "",
            "```sh",
            _report.command_line(),
            "```",
            "",
            f"{args.subscribers:,} confirmed subscribers (COPY); per run, on fresh clones: "
            f"the issue delivered *alone* by {config.workers} `herald worker` processes "
            f"(batch {config.batch_size}, {config.concurrency} loop(s), "
            f"{config.send_concurrency} calls in flight) to the Postmark batch sink, then "
            f"*mixed*: the same workers (nice {args.worker_nice}) plus `herald serve "
            f"--workers {args.web_processes}` (uvicorn, production settings{extra}) while "
            f"the open-loop generator (`bench/_load.py`, aiohttp on uvloop, its own process) "
            f"posts the subscribe form at {args.rate:g} req/s with a new email each time for "
            f"{args.seconds:g} s; the issue is published as the load starts. Latency counts "
            f"from each request's scheduled send time; an error is any non-2xx or socket "
            f"error. The workers also send the new subscribers' confirmation emails. "
            f"The generator used {gen_share:.0%} of one core over the run (median). {len(results)} "
            f"run(s); {machine()}, Python {platform.python_version()}, {_report.today()}.",
            "",
            "| | median (min-max) |",
            "|---|---:|",
            f"| subscribe requests | {col('requests')} |",
            f"| achieved rate req/s | {col('achieved_rate', ',.1f')} |",
            f"| errors | {col('errors')} |",
            f"| p50 ms | {col('p50_ms', '.1f')} |",
            f"| p95 ms | {col('p95_ms', '.1f')} |",
            f"| p99 ms | {col('p99_ms', '.1f')} |",
            f"| max ms | {col('max_ms', '.1f')} |",
            f"| deliveries/s during the mix | {col('deliveries_per_second')} |",
            f"| deliveries/s alone | {col('alone_deliveries_per_second')} |",
            f"| issue send s during the mix | {col('send_seconds', '.1f')} |",
            f"| CPU s web / workers / Postgres / sink / generator | "
            f"{statistics.median(r.cpu_web for r in results):.1f} / "
            f"{statistics.median(r.cpu_workers for r in results):.1f} / "
            f"{statistics.median(r.cpu_postgres for r in results):.1f} / "
            f"{statistics.median(r.cpu_sink for r in results):.1f} / "
            f"{statistics.median(r.cpu_generator for r in results):.1f} |",
            "",
            "| target | result |",
            "|---|---|",
            f"| 0 errors | {_report.verdict(errors == 0)} ({errors}) |",
            f"| p99 <= 100 ms | {_report.verdict(p99 <= 100)} ({p99:.1f} ms) |",
            "",
            f"Finding: the issue went out at {mixed_rate:,.0f} deliveries/s during the mix "
            f"against {alone_rate:,.0f}/s alone ({mixed_rate / alone_rate:.0%}).",
        ]
    )


async def main_async(args: argparse.Namespace) -> int:
    configure_logging(Settings(log_level="warning", log_format="console"))
    work = Path(tempfile.mkdtemp(prefix="herald-bench-r6-"))
    results: list[Mixed] = []
    failed = False
    try:
        with embedded_postgres() as pg:
            admin_dsn = pg.dsn("postgres")
            template_dsn = pg.dsn(TEMPLATE)
            await prepare_template(admin_dsn, template_dsn, args.subscribers)
            async with postmark_sink() as sink:
                for run in range(1, args.runs + 1):
                    alone = await one_run(
                        args.config,
                        run,
                        server_dsn=template_dsn,
                        admin_dsn=admin_dsn,
                        postmaster=postmaster_pid(pg),
                        sink_url=sink.base_url,
                        sink_pid=sink.pid,
                        work=work,
                        py_spy=None,
                    )
                    log(f"run {run} alone: {alone.deliveries_per_second:,.0f} deliveries/s")
                    result, examples = await mixed_run(
                        run,
                        template_dsn=template_dsn,
                        admin_dsn=admin_dsn,
                        postmaster=postmaster_pid(pg),
                        sink_url=sink.base_url,
                        sink_pid=sink.pid,
                        work=work,
                        args=args,
                    )
                    result.alone_deliveries_per_second = alone.deliveries_per_second
                    results.append(result)
                    log(
                        f"run {run} mixed: {result.achieved_rate:,.0f} req/s, errors "
                        f"{result.errors}, p50/p95/p99 {result.p50_ms}/{result.p95_ms}/"
                        f"{result.p99_ms} ms, max {result.max_ms} ms; "
                        f"{result.deliveries_per_second:,.0f} deliveries/s; CPU web/workers/"
                        f"pg/sink/gen {result.cpu_web}/{result.cpu_workers}/"
                        f"{result.cpu_postgres}/{result.cpu_sink}/{result.cpu_generator} s"
                    )
                    for example in examples:
                        log(f"  {example}")
                    if result.sent != result.recipients or alone.sent != alone.recipients:
                        log("FAILED: not every delivery was sent")
                        failed = True
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report.write_section("R6", section(results, args), [asdict(r) for r in results])
    if any(r.errors for r in results):
        log("FAILED: subscribe errors")
        failed = True
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10k, 300 req/s for 15 s, 1 run")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--subscribers", type=int)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--web-processes", type=int, default=2)
    parser.add_argument(
        "--config",
        type=Config.parse,
        default=Config.parse("2:500:1"),
        help="workers WORKERS:BATCH_SIZE:CONCURRENCY[:SEND_CONCURRENCY] (default 2:500:1)",
    )
    parser.add_argument("--worker-nice", type=int, default=0, help="niceness of the workers")
    parser.add_argument(
        "--env", action="append", default=[], metavar="KEY=VALUE", help="extra web settings"
    )
    args = parser.parse_args()
    quick = args.quick
    args.runs = args.runs or (1 if quick else 3)
    args.subscribers = args.subscribers or (10_000 if quick else 100_000)
    args.rate = args.rate or (300 if quick else 1000)
    args.seconds = args.seconds or (15 if quick else 60)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
