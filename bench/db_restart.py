"""R2 — the database restarts under subscribe load: errors only while it is down.

Started by the script, on loopback: an embedded Postgres (default settings) migrated by
the real migrations, ``herald serve --workers N`` (production settings; no delivery
worker: the confirmation emails just wait in the queue) and the open-loop generator of
``bench/_load.py`` posting the subscribe form at a fixed rate with a new email each time,
recording every request's send time, latency and status. Per run: ``--before`` seconds
of load, then Postgres is stopped (``pg_ctl stop -m fast``), kept down ``--down``
seconds, started again, and the load goes on ``--after`` seconds::

    .venv/bin/python bench/db_restart.py            # 3 runs: 10 s + 10 s down + 20 s, 200/s
    .venv/bin/python bench/db_restart.py --quick    # 1 run, 4 s + 4 s down + 8 s, 100/s

Checks: no error before the stop or later than ``--grace`` seconds after Postgres is
back; only 503s (never a 500) while it is down, none slower than the database timeouts
allow; every subscription that got a 2xx is in the table afterwards. Reports the
recovery time (Postgres back → first 2xx) and the errors per phase.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import platform
import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path

import asyncpg

import _report
from _harness import (
    embedded_postgres,
    log,
    machine,
    migrated_database,
)
from _load import Record, percentile, read_records, start_open_loop
from _web import free_port, herald_command, herald_env, web_server
from herald.core.config import DatabaseSettings
from herald.core.embedded_pg import EmbeddedPostgres

DATABASE = "herald_bench"


@dataclass
class Outcome:
    run: int
    requests: int
    rate: float
    stop_at: float  # seconds since the load started: pg_ctl stop called
    down_at: float  # pg_ctl stop returned
    up_at: float  # pg_ctl start returned (socket present)
    errors_before: int
    errors_down: int
    errors_after_grace: int
    errors_in_grace: int
    statuses_down: dict[str, int]
    max_error_latency_s: float
    recovery_s: float
    p99_after_ms: float
    answered_2xx: int
    missing_2xx: int
    details: list[str] = field(default_factory=list)


async def prepare(admin_dsn: str, dsn: str) -> None:
    await migrated_database(admin_dsn, dsn, DATABASE)


async def missing(dsn: str, emails: list[str]) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        found = await conn.fetchval(
            "SELECT count(*) FROM subscriptions WHERE lower(email) = ANY($1::text[])",
            [e.lower() for e in emails],
        )
    finally:
        await conn.close()
    return len(emails) - int(found)


def status_label(record: Record) -> str:
    return str(record.status) if record.status else "socket error/timeout"


async def one_run(
    run: int, pg: EmbeddedPostgres, base_url: str, work: Path, args: argparse.Namespace
) -> Outcome:
    out = work / f"r2-run{run}.jsonl"
    duration = args.before + args.down + args.after
    load = await start_open_loop(
        base_url,
        rate=args.rate,
        duration=duration,
        prefix=f"r2-{run}-{uuid.uuid4().hex[:6]}",
        out=out,
        timeout=args.client_timeout,
    )
    started = time.time()
    await asyncio.sleep(args.before)
    stop_at = time.time()
    await asyncio.to_thread(pg.stop)
    down_at = time.time()
    log(f"run {run}: Postgres stopped in {down_at - stop_at:.2f} s")
    await asyncio.sleep(args.down)
    await asyncio.to_thread(pg.start)
    up_at = time.time()
    log(f"run {run}: Postgres back {up_at - down_at:.1f} s after it stopped")
    await load.wait(duration + args.client_timeout + 30)
    records = read_records(out)

    phases: dict[str, list[Record]] = {"before": [], "down": [], "grace": [], "after": []}
    for r in records:
        if r.wall + r.latency < stop_at:
            phases["before"].append(r)  # answered before the stop began
        elif r.wall < up_at:
            phases["down"].append(r)
        elif r.wall < up_at + args.grace:
            phases["grace"].append(r)
        else:
            phases["after"].append(r)
    before, down, grace, after = (phases[k] for k in ("before", "down", "grace", "after"))
    errors_down = [r for r in down if not r.ok]
    first_ok = min((r.wall + r.latency for r in records if r.ok and r.wall >= up_at), default=None)
    ok = [r for r in records if r.ok]
    details = sorted({f"{r.status} {r.detail[:120]}" for r in errors_down})[:5]
    outcome = Outcome(
        run=run,
        requests=len(records),
        rate=round(len(records) / duration, 1),
        stop_at=round(stop_at - started, 2),
        down_at=round(down_at - started, 2),
        up_at=round(up_at - started, 2),
        errors_before=sum(not r.ok for r in before),
        errors_down=len(errors_down),
        errors_after_grace=sum(not r.ok for r in after),
        errors_in_grace=sum(not r.ok for r in grace),
        statuses_down=dict(collections.Counter(status_label(r) for r in errors_down)),
        max_error_latency_s=round(max((r.latency for r in records if not r.ok), default=0.0), 3),
        recovery_s=round(first_ok - up_at, 3) if first_ok is not None else float("nan"),
        p99_after_ms=round(percentile([r.latency for r in after], 99) * 1000, 1),
        answered_2xx=len(ok),
        missing_2xx=await missing(pg.dsn(DATABASE), [r.email for r in ok]),
        details=details,
    )
    log(
        f"run {run}: {outcome.requests} requests; errors before/down/grace/after "
        f"{outcome.errors_before}/{outcome.errors_down}/{outcome.errors_in_grace}/"
        f"{outcome.errors_after_grace}; statuses down {outcome.statuses_down}; "
        f"recovery {outcome.recovery_s} s; max error latency {outcome.max_error_latency_s} s; "
        f"missing {outcome.missing_2xx} of {outcome.answered_2xx}"
    )
    for line in details:
        log(f"  e.g. {line}")
    return outcome


def unhandled_errors(web_log: Path, limit: int = 3) -> str:
    """The first few unhandled errors (with their tracebacks) the web processes logged."""
    lines = web_log.read_text(errors="replace").splitlines()
    return "\n".join([line for line in lines if '"unhandled error"' in line][:limit])


def hang_bound(db: DatabaseSettings) -> float:
    """The longest a request may wait on a dead database: acquiring a connection
    (which may have to reconnect) is bounded by the acquire and connect timeouts."""
    return db.acquire_timeout_seconds + db.connect_timeout_seconds


def failures(outcomes: list[Outcome], bound: float) -> list[str]:
    problems = []
    for o in outcomes:
        if o.errors_before or o.errors_after_grace:
            problems.append(f"run {o.run}: errors outside the outage (+ grace)")
        if any(status != "503" for status in o.statuses_down):
            problems.append(f"run {o.run}: statuses other than 503 during the outage")
        if o.max_error_latency_s > bound:
            problems.append(f"run {o.run}: an error took {o.max_error_latency_s} s (> {bound} s)")
        if o.missing_2xx:
            problems.append(f"run {o.run}: {o.missing_2xx} answered subscriptions are missing")
        if o.recovery_s != o.recovery_s:  # NaN: never recovered
            problems.append(f"run {o.run}: no success after the restart")
    return problems


def section(outcomes: list[Outcome], args: argparse.Namespace, bound: float) -> str:
    statuses: collections.Counter[str] = collections.Counter()
    for o in outcomes:
        statuses.update(o.statuses_down)
    seen = ", ".join(f"{code} x {count}" for code, count in sorted(statuses.items())) or "none"

    def col(name: str, fmt: str = ",.0f") -> str:
        return _report.spread([float(getattr(o, name)) for o in outcomes], fmt)

    before_errors = sum(o.errors_before for o in outcomes)
    after_errors = sum(o.errors_after_grace for o in outcomes)
    only_503 = all(code == "503" for code in statuses)
    fast = all(o.max_error_latency_s <= bound for o in outcomes)
    lost = sum(o.missing_2xx for o in outcomes)
    return "\n".join(
        [
            "### R2 — Database restart under subscribe load",
            "",
            "```sh",
            _report.command_line(),
            "```",
            "",
            f"`herald serve --workers {args.processes}` (uvicorn, production settings, "
            f"default database timeouts) on an embedded Postgres; the open-loop generator "
            f"(`bench/_load.py`, aiohttp) posts the subscribe form at {args.rate:g} req/s "
            f"with a new email each time and records every request. After {args.before:g} s "
            f"Postgres is stopped (`pg_ctl stop -m fast`), kept down {args.down:g} s and "
            f"started again; the load goes on {args.after:g} s. Errors are counted by when "
            f"the request was sent: before the stop, during the outage (stop called → "
            f"Postgres back), in a {args.grace:g} s grace after it is back, and after. "
            f"Recovery = Postgres back → first 2xx answer. {len(outcomes)} run(s); "
            f"{machine()}, Python {platform.python_version()}, {_report.today()}.",
            "",
            "| | median (min-max) |",
            "|---|---:|",
            f"| requests per run | {col('requests')} |",
            f"| achieved rate req/s | {col('rate', '.1f')} |",
            f"| stop took s | {_report.spread([o.down_at - o.stop_at for o in outcomes], '.2f')} |",
            f"| errors before the stop | {col('errors_before')} |",
            f"| errors during the outage | {col('errors_down')} |",
            f"| errors in the grace | {col('errors_in_grace')} |",
            f"| errors after the grace | {col('errors_after_grace')} |",
            f"| slowest error s | {col('max_error_latency_s', '.3f')} |",
            f"| recovery s | {col('recovery_s', '.3f')} |",
            f"| p99 after the grace ms | {col('p99_after_ms', '.1f')} |",
            f"| 2xx answers missing from the table | {lost} |",
            "",
            f"Statuses of the failed requests during the outage (all runs): {seen}.",
            "",
            "| target | result |",
            "|---|---|",
            f"| no errors before the stop or after the grace | "
            f"{_report.verdict(before_errors == 0 and after_errors == 0)} "
            f"({before_errors} / {after_errors}) |",
            f"| only 503 (never 500) during the outage | {_report.verdict(only_503)} |",
            f"| no failed request slower than acquire + connect timeout ({bound:g} s) "
            f"| {_report.verdict(fast)} |",
            f"| every 2xx subscription stored | {_report.verdict(lost == 0)} |",
        ]
    )


async def main_async(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="herald-bench-r2-"))
    outcomes: list[Outcome] = []
    bound = hang_bound(DatabaseSettings())
    try:
        with embedded_postgres() as pg:
            dsn = pg.dsn(DATABASE)
            await prepare(pg.dsn("postgres"), dsn)
            port = free_port()
            env = herald_env(dsn, "http://127.0.0.1:9", work / "data", port)
            command = herald_command("uvicorn", args.processes, port)
            async with web_server(command, env, port, work / "web.log") as web:
                for run in range(1, args.runs + 1):
                    outcomes.append(await one_run(run, pg, web.base_url, work, args))
                    await asyncio.sleep(2)
                if failures(outcomes, bound):
                    log("web log errors:\n" + unhandled_errors(web.log_path))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _report.write_section("R2", section(outcomes, args, bound), [asdict(o) for o in outcomes])
    problems = failures(outcomes, bound)
    for problem in problems:
        log(f"FAILED: {problem}")
    return 1 if problems else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="1 run, short phases, 100 req/s")
    parser.add_argument("--runs", type=int)
    parser.add_argument("--rate", type=float)
    parser.add_argument("--before", type=float)
    parser.add_argument("--down", type=float)
    parser.add_argument("--after", type=float)
    parser.add_argument("--grace", type=float, default=2.0, help="seconds after Postgres is back")
    parser.add_argument("--processes", type=int, default=2, help="web processes")
    parser.add_argument("--client-timeout", type=float, default=30)
    args = parser.parse_args()
    quick = args.quick
    args.runs = args.runs or (1 if quick else 3)
    args.rate = args.rate or (100 if quick else 200)
    args.before = args.before or (4 if quick else 10)
    args.down = args.down or (4 if quick else 10)
    args.after = args.after or (8 if quick else 20)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
