"""Publishing throughput: one issue to N confirmed subscribers, through real workers.

Everything runs on this machine and is started by the script: an embedded Postgres in a
temp dir (default settings, fsync on), the schema by the real migrations, N confirmed
subscribers loaded with COPY, the standalone Postmark-compatible sink
(``tests/support/postmark_sink.py``) in its own process, and K ``herald worker``
processes using the postmark provider against it. Each run clones a fresh database from
a template holding the subscribers, starts the workers (start-up is not timed), then

* publishes an issue with ``IssueService.publish`` (the fan-out ``INSERT … SELECT``) and
  times it ("publish s");
* waits until the issue is ``sent`` and takes the time from the publish commit to the
  last ``sent_at`` ("send s"), hence deliveries per second;
* reads each worker's peak RSS (``VmHWM``) and the CPU seconds spent by the workers, by
  Postgres (every child of the postmaster) and by the sink during the run.

Runs of several configurations are interleaved so drift on the machine hits all alike::

    .venv/bin/python bench/publish.py --subscribers 100000 --runs 3 \\
        --config 2:500:1 --config 1:500:2 [--py-spy DIR]

A config is ``WORKERS:BATCH_SIZE:CONCURRENCY[:SEND_CONCURRENCY]``. ``--py-spy DIR``
records the first worker of every run with py-spy (raw collapsed stacks; summarise them
with ``bench/stacks.py``); py-spy is not a project dependency: ``pip install py-spy``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import re
import shutil
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from _harness import (
    TRACING_HELP,
    Workers,
    children,
    confirmed_subscribers,
    cpu_seconds,
    embedded_postgres,
    fan_out_seconds,
    load_subscribers,
    log,
    machine,
    migrated_database,
    peak_rss_mib,
    postmark_sink,
    postmaster_pid,
    py_spy_executable,
    run_traced,
    start_py_spy,
    worker_env,
)
from herald.core.config import DatabaseSettings, Settings
from herald.core.db import Database, quote_ident
from herald.core.telemetry import configure_logging
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService

TEMPLATE = "herald_bench_template"
PARAGRAPH = (
    "This week in Herald: faster deliveries, a cleaner admin and fewer surprises. "
    "Thank you for reading, and for every reply you sent us. "
)
# About the size of a real short newsletter: ~1.3 KB of HTML, ~0.5 KB of text.
ISSUE = IssueContent(
    title="Issue 42: what happened this week",
    html="<h1>Hello {{ subscriber.name }}</h1>" + f"<p>{PARAGRAPH}</p>" * 7,
    text="Hello {{ subscriber.name }}\n\n" + "\n\n".join([PARAGRAPH] * 3),
)


@dataclass(frozen=True)
class Config:
    workers: int
    batch_size: int
    concurrency: int
    send_concurrency: int = 32

    @classmethod
    def parse(cls, text: str) -> Config:
        return cls(*(int(part) for part in text.split(":")))

    @property
    def label(self) -> str:
        label = f"{self.workers} x {self.batch_size} x {self.concurrency}"
        return label if self.send_concurrency == 32 else f"{label}, send {self.send_concurrency}"

    def env(self, dsn: str, sink_url: str, data_dir: Path) -> dict[str, str]:
        """The environment of this config's ``herald worker`` processes."""
        return worker_env(
            dsn,
            sink_url,
            data_dir,
            batch_size=self.batch_size,
            concurrency=self.concurrency,
            send_concurrency=self.send_concurrency,
        )


@dataclass
class Result:
    config: str
    run: int
    recipients: int
    publish_seconds: float
    send_seconds: float
    fan_out_seconds: float
    deliveries_per_second: float
    sent: int
    retried_rows: int
    worker_peak_rss_mib: float
    cpu_workers: float
    cpu_postgres: float
    cpu_sink: float


async def prepare_template(admin_dsn: str, dsn: str, subscribers: int) -> None:
    await migrated_database(admin_dsn, dsn, TEMPLATE)
    await load_subscribers(dsn, subscribers)


async def clone(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        strategy = " STRATEGY FILE_COPY" if admin.get_server_version().major >= 15 else ""
        await admin.execute(
            f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(TEMPLATE)}{strategy}"
        )
    finally:
        await admin.close()


async def drop(admin_dsn: str, name: str) -> None:
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
    finally:
        await admin.close()


async def one_run(
    config: Config,
    run: int,
    *,
    server_dsn: str,
    admin_dsn: str,
    postmaster: int,
    sink_url: str,
    sink_pid: int,
    work: Path,
    py_spy: Path | None,
    extra_env: Mapping[str, str] | None = None,
    sink_pids: Callable[[], list[int]] | None = None,
    reuse_database: str | None = None,
) -> Result:
    """One publish of one issue on a fresh clone of the template.

    ``extra_env`` overrides the workers' environment (another provider or its
    settings); ``sink_pids`` lists the sink's processes when it has more than one;
    ``reuse_database`` publishes on that existing database instead of a clone (and
    leaves it in place).
    """
    name = reuse_database or f"herald_bench_{run}_{uuid.uuid4().hex[:6]}"
    if reuse_database is None:
        await clone(admin_dsn, name)
    dsn = server_dsn.replace(f"/{TEMPLATE}?", f"/{name}?")
    env = config.env(dsn, sink_url, work / "data")
    env.update(extra_env or {})
    sink = sink_pids or (lambda: [sink_pid])
    workers = Workers(env, work)
    settings = Settings(
        database_url=dsn,
        base_url="https://news.herald.test",
        secret_key="b" * 48,
        data_dir=work / "data",
    )
    db = await Database.open(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=2), "bench")
    profiler = None
    try:
        await workers.start(config.workers)
        service = IssueService(db, settings)
        issue_id = await service.create_draft(ISSUE, created_by=None)
        pg = children(postmaster)
        before = cpu_seconds(workers.pids), cpu_seconds(pg), cpu_seconds(sink())
        if py_spy is not None:
            profiler = await start_py_spy(workers.pids[0], py_spy / f"{name}.txt")
        async with db.connection() as conn:
            recipients = await confirmed_subscribers(conn)
        started = time.perf_counter()
        await service.publish(issue_id)  # marks the issue; the workers queue its deliveries
        publish_seconds = time.perf_counter() - started
        async with db.connection() as conn:
            committed_at = await conn.fetchval("SELECT clock_timestamp()")
            deadline = time.monotonic() + max(300.0, recipients / 100)
            while (
                await conn.fetchval("SELECT status FROM newsletter_issues WHERE id = $1", issue_id)
                != "sent"
            ):
                if time.monotonic() > deadline:
                    raise RuntimeError("the issue was not sent in time:\n" + workers.log_tail())
                await asyncio.sleep(0.1)
            pg = sorted(set(pg) | set(children(postmaster)))
            after = cpu_seconds(workers.pids), cpu_seconds(pg), cpu_seconds(sink())
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
                await asyncio.wait_for(profiler.wait(), 60)
            row = await conn.fetchrow(
                """
                SELECT count(*) FILTER (WHERE status = 'sent') AS sent,
                       count(*) FILTER (WHERE attempts > 1) AS retried,
                       max(sent_at) AS last
                FROM deliveries WHERE issue_id = $1
                """,
                issue_id,
            )
            fanned_out = await fan_out_seconds(conn, issue_id)
        rss = max(peak_rss_mib(pid) for pid in workers.pids)
    finally:
        codes = await workers.stop()
        await db.close()
        if reuse_database is None:
            await drop(admin_dsn, name)
    if any(codes):
        log(f"warning: worker exit codes {codes}\n{workers.log_tail()}")
    send_seconds = (row["last"] - committed_at).total_seconds()
    return Result(
        config=config.label,
        run=run,
        recipients=recipients,
        publish_seconds=round(publish_seconds, 3),
        send_seconds=round(send_seconds, 2),
        fan_out_seconds=round(fanned_out or 0.0, 2),
        deliveries_per_second=round(recipients / send_seconds, 1),
        sent=row["sent"],
        retried_rows=row["retried"],
        worker_peak_rss_mib=round(rss, 1),
        cpu_workers=round(after[0] - before[0], 1),
        cpu_postgres=round(after[1] - before[1], 1),
        cpu_sink=round(after[2] - before[2], 1),
    )


ENTRY = re.compile(r"^\d{4}-\d\d-\d\d \S+ \S+ \[\d+\] ", re.MULTILINE)
DURATION = re.compile(r"duration: ([\d.]+) ms\s+(\w+)[^:]*: (.*)", re.DOTALL)


def statement_summary(server_log: Path, top: int = 15) -> str:
    """Total server time per statement, from ``log_min_duration_statement = 0`` lines."""
    totals: dict[str, list[float]] = {}
    for entry in ENTRY.split(server_log.read_text(errors="replace")):
        match = DURATION.search(entry)
        if not match:
            continue
        sql = " ".join(match[3].split())[:110]
        totals.setdefault(f"{match[2]:<9} {sql}", []).append(float(match[1]))
    ranked = sorted(totals.items(), key=lambda item: -sum(item[1]))[:top]
    lines = ["server time per statement (all runs): total s, calls, mean ms"]
    lines += [f"{sum(v) / 1000:8.2f} {len(v):7} {sum(v) / len(v):8.2f}  {k}" for k, v in ranked]
    return "\n".join(lines)


def spread(values: list[float], fmt: str = ",.0f") -> tuple[str, str]:
    return format(statistics.median(values), fmt), (
        f"{format(min(values), fmt)}-{format(max(values), fmt)}"
    )


def table(results: list[Result], configs: list[Config]) -> str:
    lines = [
        "| workers x batch x loops | median deliveries/s | min-max | publish s (median) "
        "| send s (median) | worker peak RSS MiB | CPU s: workers / Postgres / sink |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for config in configs:
        mine = [r for r in results if r.config == config.label]
        if not mine:
            continue
        rate, rate_range = spread([r.deliveries_per_second for r in mine])
        publish = statistics.median(r.publish_seconds for r in mine)
        send = statistics.median(r.send_seconds for r in mine)
        rss = max(r.worker_peak_rss_mib for r in mine)
        cpu = " / ".join(
            f"{statistics.median(getattr(r, field) for r in mine):.1f}"
            for field in ("cpu_workers", "cpu_postgres", "cpu_sink")
        )
        lines.append(
            f"| {config.label} | {rate} | {rate_range} | {publish:.2f} | {send:.1f} "
            f"| {rss:.0f} | {cpu} |"
        )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    configure_logging(Settings(log_level="warning", log_format="console"))
    configs = [Config.parse(text) for text in args.config or ["2:500:1"]]
    work = Path(tempfile.mkdtemp(prefix="herald-bench-work-"))
    py_spy = profile_dir(args.py_spy)
    settings = dict(item.split("=", 1) for item in args.pg_setting)
    if args.pg_statements:
        settings["log_min_duration_statement"] = "0"
    results: list[Result] = []
    try:
        with embedded_postgres(settings) as server:
            admin_dsn = server.dsn("postgres")
            template_dsn = server.dsn(TEMPLATE)
            await prepare_template(admin_dsn, template_dsn, args.subscribers)
            conn = await asyncpg.connect(admin_dsn)
            pg_version = await conn.fetchval("SHOW server_version")
            await conn.close()
            async with postmark_sink(args.sink_delay_ms) as sink:
                for run in range(1, args.runs + 1):
                    for config in configs:
                        result = await one_run(
                            config,
                            run,
                            server_dsn=template_dsn,
                            admin_dsn=admin_dsn,
                            postmaster=postmaster_pid(server),
                            sink_url=sink.base_url,
                            sink_pid=sink.pid,
                            work=work,
                            py_spy=py_spy,
                        )
                        results.append(result)
                        log(
                            f"run {run} {config.label}: {result.deliveries_per_second:,.0f}/s "
                            f"(publish {result.publish_seconds:.2f} s, "
                            f"send {result.send_seconds:.1f} s, "
                            f"RSS {result.worker_peak_rss_mib:.0f} MiB, "
                            f"CPU w/pg/sink {result.cpu_workers}/{result.cpu_postgres}/"
                            f"{result.cpu_sink} s, retried rows {result.retried_rows})"
                        )
                        if result.sent != result.recipients:
                            raise RuntimeError(f"only {result.sent} of {result.recipients} sent")
            if args.pg_statements:
                log(statement_summary(server.log_file))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(
        f"{args.subscribers:,} confirmed subscribers, {args.runs} runs per config, "
        f"sink delay {args.sink_delay_ms:g} ms; {machine()}; Python "
        f"{platform.python_version()}; Postgres {pg_version}; "
        f"{datetime.now(UTC).date().isoformat()}"
    )
    print(table(results, configs))
    if args.json:
        write_json(Path(args.json), results)
    return 0


def profile_dir(path: str | None) -> Path | None:
    if path is None:
        return None
    py_spy_executable()
    directory = Path(path).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    return directory


def write_json(path: Path, results: list[Result]) -> None:
    path.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--config",
        action="append",
        help="WORKERS:BATCH_SIZE:CONCURRENCY[:SEND_CONCURRENCY] (repeatable; default 2:500:1)",
    )
    parser.add_argument("--sink-delay-ms", type=float, default=0.0)
    parser.add_argument(
        "--pg-setting", action="append", default=[], help="KEY=VALUE for postgresql.conf"
    )
    parser.add_argument(
        "--pg-statements",
        action="store_true",
        help="log every statement's duration and print the costliest (slows Postgres a bit)",
    )
    parser.add_argument("--py-spy", metavar="DIR", help="profile the first worker of each run")
    parser.add_argument("--json", metavar="PATH", help="also write every run's numbers here")
    parser.add_argument("--tracing", action="store_true", help=TRACING_HELP)
    args = parser.parse_args()
    return run_traced(args.tracing, lambda: main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
