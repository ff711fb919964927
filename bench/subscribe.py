"""P3 — the subscribe API against a one-INSERT endpoint, under uvicorn and granian.

Started by the script, all on loopback: an embedded Postgres (default settings, durable
commits) migrated by the real migrations, the Postmark-compatible sink, one
``herald worker`` sending the confirmation emails the subscriptions enqueue (as in
production, where a worker runs beside the web), and then, one at a time:

* Herald: ``herald serve --workers N`` (uvicorn, what ships) or the same app factory
  under granian, production settings, info-level JSON logs to a file;
* the yardstick: ``bench/trivial_app.py`` (one FastAPI route, one INSERT through the same
  asyncpg pool settings) under the same server with the same number of processes.

Each gets a warm-up, then ``--runs`` closed-loop ``wrk`` runs at 64 connections posting a
form with a unique email per request (``bench/_load.py``). Reports requests/s, p50/p99,
Herald/trivial ratio (target >= 0.5) and Herald's p99 (target <= 100 ms)::

    .venv/bin/python bench/subscribe.py                # full: uvicorn+granian, 1 and 2 processes
    .venv/bin/python bench/subscribe.py --quick        # uvicorn, 2 processes, 5 s, 1 run
    .venv/bin/python bench/subscribe.py --py-spy DIR   # also profile a Herald web process
    .venv/bin/python bench/subscribe.py --tracing      # Herald traced, to a collector here
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import platform
import shutil
import signal
import statistics
import tempfile
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import asyncpg

import _report
from _harness import (
    TRACING_HELP,
    Workers,
    children,
    cpu_seconds,
    embedded_postgres,
    log,
    machine,
    migrated_database,
    postmark_sink,
    postmaster_pid,
    run_traced,
    start_py_spy,
    worker_env,
)
from _load import WrkResult, run_wrk
from _web import free_port, herald_command, herald_env, trivial_command, web_server
from trivial_app import TABLE_DDL

DATABASE = "herald_bench"
APPS = ("herald", "trivial")


@dataclass
class Run:
    server: str
    processes: int
    app: str
    run: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    errors: int
    requests: int
    cpu_web_ms_per_request: float
    cpu_postgres_ms_per_request: float


async def prepare(admin_dsn: str, dsn: str) -> None:
    await migrated_database(admin_dsn, dsn, DATABASE)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(TABLE_DDL)
    finally:
        await conn.close()


async def measure(
    server: str,
    processes: int,
    app: str,
    *,
    dsn: str,
    sink_url: str,
    work: Path,
    postmaster: int,
    args: argparse.Namespace,
) -> list[Run]:
    """Start one server with one app, warm it up, then ``args.runs`` measured wrk runs."""
    port = free_port()
    env = herald_env(dsn, sink_url, work / "data", port)
    env.update(item.split("=", 1) for item in args.env)
    if app == "herald":
        command, path, ready = herald_command(server, processes, port), "/subscriptions", None
    else:
        command, path, ready = trivial_command(server, processes, port), "/insert", "/health"
    log_path = work / f"{server}-{processes}-{app}.log"
    results: list[Run] = []
    async with web_server(command, env, port, log_path, ready_path=ready or "/health/ready") as web:
        await run_wrk(
            web.base_url,
            path=path,
            prefix=uuid.uuid4().hex[:8],
            seconds=args.warmup,
            connections=args.connections,
        )
        for run in range(1, args.runs + 1):
            profiler = None
            if args.py_spy and app == "herald" and run == 1:
                output = Path(args.py_spy) / f"{server}-{processes}-web.txt"
                profiler = await start_py_spy(web.worker_pids[0], output)
            pg = children(postmaster)
            before = cpu_seconds(web.pids), cpu_seconds(pg)
            result: WrkResult = await run_wrk(
                web.base_url,
                path=path,
                prefix=uuid.uuid4().hex[:8],
                seconds=args.seconds,
                connections=args.connections,
            )
            after = cpu_seconds(web.pids), cpu_seconds(sorted(set(pg) | set(children(postmaster))))
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                await asyncio.wait_for(profiler.wait(), 60)
            per_request = 1000 / max(1, result.requests)
            results.append(
                Run(
                    server=server,
                    processes=processes,
                    app=app,
                    run=run,
                    rps=round(result.rps, 1),
                    p50_ms=round(result.p50_ms, 2),
                    p99_ms=round(result.p99_ms, 2),
                    max_ms=round(result.max_ms, 2),
                    errors=result.errors,
                    requests=result.requests,
                    cpu_web_ms_per_request=round((after[0] - before[0]) * per_request, 3),
                    cpu_postgres_ms_per_request=round((after[1] - before[1]) * per_request, 3),
                )
            )
            log(
                f"{server} x{processes} {app} run {run}: {result.rps:,.0f} req/s, "
                f"p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms, "
                f"errors {result.errors}, CPU web {results[-1].cpu_web_ms_per_request} ms/req"
            )
        if app == "herald" and any(r.errors for r in results):
            log(web.log_tail())
    return results


def section(runs: list[Run], combos: list[tuple[str, int]], args: argparse.Namespace) -> str:
    lines = [
        "### P3 — Subscribe API against a one-INSERT endpoint",
        "",
        "```sh",
        _report.command_line(),
        "```",
        "",
        f"`POST /subscriptions` (form `name=…&email=…`, `Accept: text/html`, a new email "
        f"every request, so every request creates a subscription, a token and the "
        f"confirmation email's outbox row in one transaction) with `wrk` at "
        f"{args.connections} connections, {args.warmup:g} s warm-up then {args.runs} x "
        f"{args.seconds:g} s, next to `bench/trivial_app.py` (one FastAPI route doing one "
        f"INSERT through the same asyncpg pool settings) on the same server with the same "
        f"number of processes, in the same run. Herald runs in production mode with info "
        f"logs (one JSON access-log line per request) to a file; one `herald worker` sends "
        f"the confirmations to the Postmark sink meanwhile. Embedded Postgres, default "
        f"settings (durable commits). {machine()}, Python {platform.python_version()}, "
        f"{_report.today()}. CPU ms/req: CPU time of the web processes and of Postgres "
        f"per answered request.",
        "",
        "| server | web processes | endpoint | req/s | p50 ms | p99 ms | errors "
        "| CPU ms/req web / Postgres |",
        "|---|---:|---|---:|---:|---:|---:|---|",
    ]
    verdicts: list[str] = []
    best: tuple[float, str] | None = None
    for server, processes in combos:
        by_app = {
            app: [r for r in runs if (r.server, r.processes, r.app) == (server, processes, app)]
            for app in APPS
        }
        for app in APPS:
            mine = by_app[app]
            if not mine:
                continue
            cpu = (
                f"{statistics.median(r.cpu_web_ms_per_request for r in mine):.2f} / "
                f"{statistics.median(r.cpu_postgres_ms_per_request for r in mine):.2f}"
            )
            label = "`POST /subscriptions`" if app == "herald" else "one INSERT"
            lines.append(
                f"| {server} | {processes} | {label} "
                f"| {_report.spread([r.rps for r in mine])} "
                f"| {_report.spread([r.p50_ms for r in mine], '.1f')} "
                f"| {_report.spread([r.p99_ms for r in mine], '.1f')} "
                f"| {sum(r.errors for r in mine)} | {cpu} |"
            )
        herald, trivial = by_app["herald"], by_app["trivial"]
        if herald and trivial:
            ratio = statistics.median(r.rps for r in herald) / statistics.median(
                r.rps for r in trivial
            )
            p99 = statistics.median(r.p99_ms for r in herald)
            rate = statistics.median(r.rps for r in herald)
            verdicts.append(
                f"| {server} | {processes} | {ratio:.2f} | {_report.verdict(ratio >= 0.5)} "
                f"| {p99:.1f} | {_report.verdict(p99 <= 100)} |"
            )
            if best is None or rate > best[0]:
                best = (rate, f"{server} with {processes} process(es)")
    lines += [
        "",
        "Targets: Herald/trivial req/s ratio >= 0.5, Herald p99 <= 100 ms (medians).",
        "",
        "| server | web processes | ratio Herald/trivial | ratio target | Herald p99 ms "
        "| p99 target |",
        "|---|---:|---:|---|---:|---|",
        *verdicts,
    ]
    if best is not None:
        lines += [
            "",
            f"Finding: Herald's best configuration here was {best[1]} "
            f"({best[0]:,.0f} req/s median).",
        ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    servers = args.server or (["uvicorn"] if args.quick else list(_available_servers()))
    counts = args.processes or ([2] if args.quick else [1, 2])
    combos = [(server, n) for server in servers for n in counts]
    work = Path(tempfile.mkdtemp(prefix="herald-bench-p3-"))
    runs: list[Run] = []
    try:
        with embedded_postgres() as pg:
            dsn = pg.dsn(DATABASE)
            await prepare(pg.dsn("postgres"), dsn)
            async with postmark_sink() as sink:
                workers = Workers(worker_env(dsn, sink.base_url, work / "data"), work)
                await workers.start(1)
                try:
                    for server, processes in combos:
                        for app in APPS:
                            runs += await measure(
                                server,
                                processes,
                                app,
                                dsn=dsn,
                                sink_url=sink.base_url,
                                work=work,
                                postmaster=postmaster_pid(pg),
                                args=args,
                            )
                finally:
                    await workers.stop()
                conn = await asyncpg.connect(dsn)
                try:
                    subscriptions = await conn.fetchval("SELECT count(*) FROM subscriptions")
                finally:
                    await conn.close()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    answered = sum(r.requests - r.errors for r in runs if r.app == "herald")
    log(f"{subscriptions:,} subscriptions in the table, {answered:,} answered in measured runs")
    _report.write_section("P3", section(runs, combos, args), [asdict(r) for r in runs])
    errors = sum(r.errors for r in runs)
    if errors:
        log(f"FAILED: {errors} errors")
        return 1
    return 0


def _available_servers() -> list[str]:
    if importlib.util.find_spec("granian") is None:
        log("granian is not installed (.venv/bin/pip install granian): uvicorn only")
        return ["uvicorn"]
    return ["uvicorn", "granian"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="uvicorn, 2 processes, 5 s, 1 run")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--server", action="append", choices=["uvicorn", "granian"])
    parser.add_argument("--processes", action="append", type=int)
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment for both apps (e.g. HERALD_DB__POOL_MAX_SIZE=20)",
    )
    parser.add_argument("--py-spy", metavar="DIR", help="profile the first Herald web process")
    parser.add_argument("--tracing", action="store_true", help=TRACING_HELP)
    args = parser.parse_args()
    args.runs = args.runs or (1 if args.quick else 3)
    args.seconds = args.seconds or (5 if args.quick else 12)
    if args.py_spy:
        Path(args.py_spy).mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(KeyboardInterrupt):
        return run_traced(args.tracing, lambda: main_async(args))
    return 130


if __name__ == "__main__":
    raise SystemExit(main())
