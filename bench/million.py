"""P2 — big lists: the publish request, the fan-out in the workers, delivery, worker memory,
and whether the web process stays responsive meanwhile.

One embedded Postgres holds one database per list size (``herald_p2_<size>``), loaded
once with COPY and reused by every run (re-cloning a 10M-row database per run would cost
more than the run); ``--cluster DIR`` keeps that cluster between invocations. Each run
empties the queue (``TRUNCATE deliveries``, probe subscribers deleted, ``CHECKPOINT``),
starts 3 ``herald worker`` processes (Postmark batch to ``tests/support/postmark_sink.py``)
and one ``herald serve``, signs in as an admin through ``/login`` and publishes through the
contract form, ``POST /admin/newsletters``. Reported per size:

* **publish request s**: the ``POST /admin/newsletters`` round trip (303 expected);
* **fan-out s**: ``published_at`` → ``fanout_done_at`` (the workers queued everyone);
* **delivered s**: ``published_at`` → the last ``sent_at``; deliveries/s from it;
* **worker peak RSS**: each worker's ``VmHWM``;
* **web**: from 2 s before the publish until the issue is ``sent``, every
  ``--probe-interval`` s, ``GET /health/ready``, ``GET /`` and ``POST /subscriptions``
  (a new pending address) against the ``herald serve`` process: p50 / p99 / max latency
  from the time each probe was due, and every non-2xx or timeout;
* the time per fan-out chunk (``recipients`` polled every 0.1 s) and the CPU seconds of
  workers / Postgres / web / sink during the fan-out and the whole run.

Exits non-zero if a delivery is not sent or the publish request is not a 303::

    .venv/bin/python bench/million.py           # 100k vs 1M, 3 runs (make bench)
    .venv/bin/python bench/million.py --quick   # 20k vs 100k, 1 run
    .venv/bin/python bench/million.py --huge --cluster /var/tmp/herald-p2   # 100k vs 10M
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

import _p2report
from _harness import (
    CpuTracker,
    Probe,
    Prober,
    Workers,
    children,
    embedded_postgres,
    load_subscribers,
    log,
    peak_rss_mib,
    postmark_sink,
    postmaster_pid,
)
from _web import free_port, herald_command, herald_env, web_server
from herald.auth.passwords import Passwords
from herald.auth.service import AuthService
from herald.core import migrate
from herald.core.config import DatabaseSettings, DeliverySettings, Settings
from herald.core.db import Database, quote_ident
from herald.core.telemetry import configure_logging
from publish import ISSUE, Config

CONFIG = Config(workers=3, batch_size=500, concurrency=1, send_concurrency=32)
ADMIN, PASSWORD = "admin", "p2-bench-Pa55word-4c1e"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
IDEMPOTENCY = re.compile(r'name="idempotency_key" value="([^"]+)"')
BASELINE_S = 2.0  # probes before the publish, for comparison


@dataclass
class Run:
    size: int
    run: int
    schema: str
    recipients: int
    sent: int
    publish_status: int
    publish_request_seconds: float
    fan_out_seconds: float
    delivered_seconds: float
    deliveries_per_second: float
    sent_during_fan_out: int
    worker_rss_mib: list[float]
    web_rss_mib: float
    fan_out_chunk: int
    chunks: list[tuple[float, int]]  # (s since published_at, recipients queued so far)
    cpu_fan_out: dict[str, float]
    cpu_total: dict[str, float]
    pg_cpu_fan_out: dict[str, float]  # Postgres's CPU by backend type
    pg_cpu_total: dict[str, float]
    activity: list[tuple[float, list[str]]]  # (s since published_at, active sessions)
    wal: dict[str, dict[str, float]]  # WAL and checkpoint counters: before, fan_out, end
    probes: list[dict[str, Any]] = field(default_factory=list)  # relative to published_at


def database_name(size: int) -> str:
    return f"herald_p2_{size}"


async def prepare(admin_dsn: str, dsn: str, size: int) -> None:
    """The database of one list size: created and loaded unless it already holds exactly
    ``size`` confirmed subscribers (a kept cluster), migrated to head, with an admin."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        name = database_name(size)
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
    finally:
        await admin.close()
    await migrate.upgrade_async(dsn, "head")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE deliveries")
        await conn.execute("DELETE FROM subscriptions WHERE status <> 'confirmed'")
        have = await conn.fetchval("SELECT count(*) FROM subscriptions")
        if have != size:
            if have:
                log(f"{name}: {have:,} subscribers, not {size:,}: reloading")
                await conn.execute("TRUNCATE subscriptions CASCADE")
            await load_subscribers(dsn, size, label=name)
        else:
            log(f"{name}: reusing {size:,} subscribers")
        has_admin = await conn.fetchval("SELECT 1 FROM users WHERE username = $1", ADMIN)
    finally:
        await conn.close()
    if not has_admin:
        settings = Settings(database_url=dsn, secret_key="b" * 48)
        db = await Database.open(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=1), "p2")
        passwords = Passwords(memory_kib=8 * 1024, time_cost=1, threads=1)
        try:
            await AuthService(db, settings, passwords).create_user(ADMIN, PASSWORD)
        finally:
            passwords.close()
            await db.close()


async def reset_queue(conn: asyncpg.Connection) -> None:
    await conn.execute("TRUNCATE deliveries")
    await conn.execute("DELETE FROM subscriptions WHERE status <> 'confirmed'")  # probes
    await conn.execute("CHECKPOINT")


async def form_fields(session: aiohttp.ClientSession, url: str) -> dict[str, str]:
    async with session.get(url) as page:
        text = await page.text()
        if page.status != 200:
            raise RuntimeError(f"GET {url}: {page.status}\n{text[:500]}")
    fields = {"csrf_token": CSRF.search(text)}
    if "/admin/newsletters" in url:
        fields["idempotency_key"] = IDEMPOTENCY.search(text)
    if not all(fields.values()):
        raise RuntimeError(f"GET {url}: no {', '.join(k for k, v in fields.items() if not v)}")
    return {k: v.group(1) for k, v in fields.items() if v}


async def log_in(session: aiohttp.ClientSession, base_url: str) -> None:
    form = await form_fields(session, base_url + "/login")
    form.update(username=ADMIN, password=PASSWORD)
    async with session.post(base_url + "/login", data=form, allow_redirects=False) as answer:
        if answer.headers.get("location") != "/admin/dashboard":
            raise RuntimeError(f"log-in failed: {answer.status} {await answer.text()}")


async def publish(session: aiohttp.ClientSession, base_url: str, title: str) -> tuple[int, float]:
    """The contract form, as a browser posts it; (status, seconds for the request)."""
    form = await form_fields(session, base_url + "/admin/newsletters")
    form.update(title=title, html_content=ISSUE.html, text_content=ISSUE.text)
    started = time.perf_counter()
    async with session.post(
        base_url + "/admin/newsletters", data=form, allow_redirects=False
    ) as answer:
        await answer.read()
        seconds = time.perf_counter() - started
        if answer.status != 303 or answer.headers.get("location") != "/admin/newsletters":
            raise RuntimeError(f"publish: {answer.status} {await answer.text()}")
        return answer.status, seconds


WAL_17 = """
SELECT w.wal_records::float8 AS records, w.wal_fpi::float8 AS fpi, w.wal_bytes::float8 AS bytes,
       c.num_timed::float8 AS timed, c.num_requested::float8 AS requested
FROM pg_stat_wal AS w, pg_stat_checkpointer AS c
"""
WAL_16 = """
SELECT w.wal_records::float8 AS records, w.wal_fpi::float8 AS fpi, w.wal_bytes::float8 AS bytes,
       b.checkpoints_timed::float8 AS timed, b.checkpoints_req::float8 AS requested
FROM pg_stat_wal AS w, pg_stat_bgwriter AS b
"""
ACTIVITY = """
SELECT pid, backend_type, state, wait_event_type, wait_event, query FROM pg_stat_activity
WHERE pid <> pg_backend_pid() AND backend_type IN ('client backend', 'autovacuum worker')
"""
LABELS = {
    "WITH chunk AS": "fan-out chunk (fan_out_chunk)",
    "WITH due AS": "claim",
    "UPDATE deliveries AS d SET status = 'sent'": "mark sent",
    "SELECT id, email, name, status FROM subscriptions": "load recipients (render)",
}


def label(backend_type: str, query: str) -> str:
    text = " ".join(query.split())
    if backend_type == "autovacuum worker":
        return text or "autovacuum"
    for prefix, name in LABELS.items():
        if text.startswith(prefix):
            return name
    return " ".join(text.split()[:5])


@dataclass
class Activity:
    """Postgres's backends sampled about once a second (an active-session history): what
    the active ones ran, and each backend's type for the CPU split."""

    samples: list[tuple[float, list[str]]] = field(default_factory=list)
    types: dict[int, str] = field(default_factory=dict)
    wal_points: dict[str, dict[str, float]] = field(default_factory=dict)

    async def sample(self, conn: asyncpg.Connection, elapsed: float) -> None:
        active = []
        for r in await conn.fetch(ACTIVITY):
            self.types[r["pid"]] = r["backend_type"]
            if r["state"] == "active" or r["backend_type"] == "autovacuum worker":
                name = label(r["backend_type"], r["query"] or "")
                wait = r["wait_event_type"]
                if wait and wait not in ("Timeout", "Activity", "Client"):
                    name += f" [waits {wait}:{r['wait_event']}]"
                active.append(name)
        self.samples.append((round(elapsed, 1), active))

    async def wal(self, conn: asyncpg.Connection, point: str) -> None:
        """WAL written and checkpoints so far (cluster-wide), under ``point``."""
        try:
            row = await conn.fetchrow(WAL_17)
        except asyncpg.UndefinedTableError:  # before Postgres 17
            row = await conn.fetchrow(WAL_16)
        self.wal_points[point] = dict(row) if row else {}


async def follow(
    conn: asyncpg.Connection,
    issue_id: uuid.UUID,
    tracker: CpuTracker,
    activity: Activity,
    timeout: float,
) -> tuple[list[tuple[float, int]], dict[str, float] | None, dict[int, float] | None]:
    """Poll the issue until it is sent: the fan-out's progress (seconds since
    ``published_at``, recipients queued), the CPU counters when the fan-out ended (per
    group and per Postgres process) and, every second, Postgres's active sessions."""
    chunks: list[tuple[float, int]] = []
    at_fan_out: dict[str, float] | None = None
    pg_at_fan_out: dict[int, float] | None = None
    deadline = time.monotonic() + timeout
    polls = 0
    while True:
        polls += 1
        row = await conn.fetchrow(
            "SELECT status, recipients, fanout_done_at IS NOT NULL AS done,"
            " extract(epoch FROM clock_timestamp() - published_at)::float8 AS elapsed"
            " FROM newsletter_issues WHERE id = $1",
            issue_id,
        )
        if polls % 10 == 0:
            tracker.sample()
            await activity.sample(conn, row["elapsed"])
        if row["recipients"] and (not chunks or chunks[-1][1] != row["recipients"]):
            chunks.append((round(row["elapsed"], 2), row["recipients"]))
        if row["done"] and at_fan_out is None:
            at_fan_out = tracker.sample()
            await activity.wal(conn, "fan_out")
            pg_at_fan_out = tracker.per_process("postgres")
        if row["status"] == "sent":
            return chunks, at_fan_out, pg_at_fan_out
        if time.monotonic() > deadline:
            raise RuntimeError(f"issue {issue_id} not sent after {timeout:.0f} s")
        await asyncio.sleep(0.1)


async def one_run(
    size: int,
    run: int,
    *,
    dsn: str,
    postmaster: int,
    sink_url: str,
    sink_pid: int,
    work: Path,
    args: argparse.Namespace,
) -> Run:
    logs = work / f"{size}-run{run}"
    logs.mkdir(parents=True)
    env = CONFIG.env(dsn, sink_url, work / "data")
    if args.fanout_chunk:
        env["HERALD_DELIVERY__FANOUT_CHUNK"] = str(args.fanout_chunk)
    chunk_size = args.fanout_chunk or DeliverySettings.model_fields["fanout_chunk"].default
    workers = Workers(env, logs)
    port = free_port()
    # Migrated here, not by the workers at start-up (a worker that migrates imports
    # Alembic, which shows in its RSS), also when the tree moved on since the last run.
    await migrate.upgrade_async(dsn, "head")
    conn = await asyncpg.connect(dsn)
    try:
        await reset_queue(conn)
        recipients = await conn.fetchval(
            "SELECT count(*) FROM subscriptions WHERE status = 'confirmed'"
        )
        revision = await conn.fetchval("SELECT version_num FROM alembic_version")
        await workers.start(CONFIG.workers)
        web_env = herald_env(dsn, sink_url, work / "data", port)
        command = herald_command("uvicorn", 1, port)
        async with web_server(command, web_env, port, logs / "web.log") as web:
            jar = aiohttp.CookieJar(unsafe=True, treat_as_secure_origin=web.base_url)
            async with aiohttp.ClientSession(cookie_jar=jar) as admin:
                await log_in(admin, web.base_url)
                prober = Prober(
                    web.base_url, interval=args.probe_interval, subscribe=not args.no_subscribe
                )
                prober.start()
                await asyncio.sleep(BASELINE_S)

                def groups() -> dict[str, list[int]]:
                    return {
                        "workers": workers.pids,
                        "postgres": children(postmaster),
                        "web": web.pids,
                        "sink": [sink_pid],
                    }

                tracker = CpuTracker(groups)
                activity = Activity()
                await activity.wal(conn, "before")
                title = f"P2 {size:,} run {run} ({uuid.uuid4().hex[:6]})"
                publish_started = time.monotonic()
                status, request_seconds = await publish(admin, web.base_url, title)
                issue_id = await conn.fetchval(
                    "SELECT id FROM newsletter_issues WHERE title = $1", title
                )
                chunks, at_fan_out, pg_at_fan_out = await follow(
                    conn, issue_id, tracker, activity, max(600.0, recipients / 500)
                )
                after = tracker.sample()
                await activity.wal(conn, "end")
                pg_after = tracker.per_process("postgres")
                probes = await prober.stop()
            web_rss = max(peak_rss_mib(pid) for pid in web.pids)
        worker_rss = [round(peak_rss_mib(pid), 1) for pid in workers.pids]
        row = await conn.fetchrow(
            """
            SELECT count(*) FILTER (WHERE d.status = 'sent') AS sent,
                   count(*) FILTER (WHERE d.sent_at <= i.fanout_done_at) AS early,
                   extract(epoch FROM max(d.sent_at) - i.published_at)::float8 AS delivered,
                   extract(epoch FROM i.fanout_done_at - i.published_at)::float8 AS fan_out,
                   extract(epoch FROM i.published_at)::float8 AS published
            FROM deliveries AS d JOIN newsletter_issues AS i ON i.id = d.issue_id
            WHERE d.issue_id = $1
            GROUP BY i.id
            """,
            issue_id,
        )
    finally:
        codes = await workers.stop()
        await conn.close()
    if any(codes):
        log(f"warning: worker exit codes {codes}\n{workers.log_tail()}")
    # Probe times relative to the publish (monotonic → seconds since the request left).
    rel = [
        {**asdict(p), "at": round(p.at - publish_started, 3), "latency": round(p.latency, 4)}
        for p in probes
    ]
    return Run(
        size=size,
        run=run,
        schema=revision,
        recipients=recipients,
        sent=row["sent"],
        publish_status=status,
        publish_request_seconds=round(request_seconds, 3),
        fan_out_seconds=round(row["fan_out"], 2),
        delivered_seconds=round(row["delivered"], 2),
        deliveries_per_second=round(recipients / row["delivered"], 1),
        sent_during_fan_out=row["early"],
        worker_rss_mib=worker_rss,
        web_rss_mib=round(web_rss, 1),
        fan_out_chunk=chunk_size,
        chunks=chunks,
        cpu_fan_out=at_fan_out or after,
        cpu_total=after,
        pg_cpu_fan_out=by_type(pg_at_fan_out or pg_after, activity.types),
        pg_cpu_total=by_type(pg_after, activity.types),
        activity=activity.samples,
        wal=activity.wal_points,
        probes=rel,
    )


def by_type(per_process: dict[int, float], types: dict[int, str]) -> dict[str, float]:
    """Postgres's CPU seconds by backend type (processes never seen in pg_stat_activity
    are the auxiliary ones: checkpointer, WAL writer, background writer, ...)."""
    split: dict[str, float] = {}
    for pid, seconds in per_process.items():
        kind = types.get(pid, "auxiliary and short-lived")
        split[kind] = round(split.get(kind, 0.0) + seconds, 1)
    return split


def git_commit() -> str:
    """The commit measured, marked when the working tree had other changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", "src"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{head} + uncommitted changes in src/" if dirty else head


def summary(result: Run) -> str:
    fan = _p2report.probe_stats([Probe(**p) for p in result.probes])
    worst = max((s["max_ms"] for s in fan.values()), default=float("nan"))
    errors = sum(s["errors"] for s in fan.values())
    return (
        f"run {result.run} {result.size:,} (schema {result.schema}): "
        f"publish request {result.publish_request_seconds:.3f} s, "
        f"fan-out {result.fan_out_seconds:.1f} s, delivered {result.delivered_seconds:.1f} s "
        f"({result.deliveries_per_second:,.0f}/s), worker RSS "
        f"{'/'.join(f'{r:.0f}' for r in result.worker_rss_mib)} MiB, web probes: "
        f"{errors} errors, slowest {worst:.0f} ms; CPU during fan-out {result.cpu_fan_out}"
    )


async def main_async(args: argparse.Namespace) -> int:
    configure_logging(Settings(log_level="warning", log_format="console"))
    if args.huge:
        small, large = 100_000, 10_000_000
    elif args.quick:
        small, large = 20_000, 100_000
    else:
        small, large = 100_000, 1_000_000
    small, large = args.small or small, args.large or large
    runs = args.runs or (1 if args.quick or args.huge else 3)
    work = Path(tempfile.mkdtemp(prefix="herald-bench-work-"))
    results: dict[int, list[Run]] = {small: [], large: []}
    failures: list[str] = []
    keep = Path(args.cluster) if args.cluster else None
    try:
        settings = dict(item.split("=", 1) for item in args.pg_setting)
        with embedded_postgres(settings, keep=keep) as server:
            admin_dsn = server.dsn("postgres")
            for size in results:
                await prepare(admin_dsn, server.dsn(database_name(size)), size)
            if args.load_only:
                return 0
            conn = await asyncpg.connect(admin_dsn)
            pg_version = await conn.fetchval("SHOW server_version")
            await conn.close()
            async with postmark_sink() as sink:
                for run in range(1, runs + 1):
                    for size, done in results.items():
                        result = await one_run(
                            size,
                            run,
                            dsn=server.dsn(database_name(size)),
                            postmaster=postmaster_pid(server),
                            sink_url=sink.base_url,
                            sink_pid=sink.pid,
                            work=work,
                            args=args,
                        )
                        done.append(result)
                        log(summary(result))
                        if result.sent != result.recipients:
                            failures.append(
                                f"{size:,} run {run}: only {result.sent:,} of "
                                f"{result.recipients:,} sent"
                            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    context = _p2report.Context(
        small=small,
        large=large,
        runs=runs,
        pg_version=pg_version,
        workers=CONFIG.workers,
        batch_size=CONFIG.batch_size,
        probe_interval=args.probe_interval,
        subscribe_probe=not args.no_subscribe,
        failures=failures,
        commit=git_commit(),
    )
    section = _p2report.render(results, context, huge=args.huge)
    _p2report.write(section, "huge" if args.huge else "default", results)
    print(section)
    for failure in failures:
        log(f"FAILED: {failure}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="20k vs 100k, 1 run")
    parser.add_argument(
        "--huge", action="store_true", help="100k vs 10M, 1 run (the issue-8 targets)"
    )
    parser.add_argument("--runs", type=int, help="default 3 (--quick, --huge: 1)")
    parser.add_argument("--small", type=int, help="the small list (default 100,000)")
    parser.add_argument("--large", type=int, help="the large list (default 1,000,000)")
    parser.add_argument(
        "--cluster",
        metavar="DIR",
        help="keep the embedded Postgres in DIR and reuse its loaded lists next time",
    )
    parser.add_argument(
        "--load-only", action="store_true", help="create and load the lists, then exit"
    )
    parser.add_argument(
        "--fanout-chunk", type=int, help="HERALD_DELIVERY__FANOUT_CHUNK for the workers"
    )
    parser.add_argument(
        "--pg-setting", action="append", default=[], help="KEY=VALUE for postgresql.conf"
    )
    parser.add_argument(
        "--probe-interval", type=float, default=0.15, help="seconds between web probes"
    )
    parser.add_argument(
        "--no-subscribe", action="store_true", help="probe without POST /subscriptions"
    )
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
