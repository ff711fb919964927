"""R1 — crash soak: workers SIGKILLed at random while an issue sends; nobody may be lost.

Everything runs on this machine, started by the script: an embedded Postgres, N confirmed
subscribers loaded with ``COPY`` (``publish.prepare_template``), the standalone Postmark
sink counting every recipient it accepts (``tests/support/postmark_sink.py
--count-recipients``), and ``--workers`` real ``herald worker`` processes sending through
``/email/batch``. Per run, on a fresh clone of the database: the issue is published, then
``--kills`` times, at random moments spread over the send, a worker holding a lease (so:
mid-batch) is killed with SIGKILL and a new one started at once. At the end

* **lost** = confirmed subscribers the sink never received (must be 0), and every
  subscriber must have exactly one delivery row, ``sent``; the issue must be ``sent``;
* **duplicates** = messages the sink accepted more than once for the same recipient.
  At-least-once delivery promises at most one claimed batch per kill (one claim loop per
  worker; the killed batch may already be at the provider when the kill lands), so the
  **bound** is ``kills x batch size``; the run fails above it.

::

    .venv/bin/python bench/soak.py [--quick] [--runs 3] [--subscribers 100000] [--kills 20]
        [--seed S] [--results DIR]

``--results DIR`` writes ``R1.md``/``R1.json`` there instead of ``bench/results/`` (the CI
smoke test uses it). The pieces shared with ``storm.py`` (a steerable counting sink, a pool
of restartable workers, a fresh database per run) live here too.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import _report
from _harness import (
    Sink,
    confirmed_subscribers,
    embedded_postgres,
    log,
    machine,
    postmark_sink,
    spawn_worker,
    worker_env,
)
from herald.core.config import DatabaseSettings, Settings
from herald.core.db import Database
from herald.core.telemetry import configure_logging
from herald.issues.service import IssueService
from publish import ISSUE, TEMPLATE, clone, drop, prepare_template

# -- pieces shared by the drills (soak.py, storm.py) ------------------------------------


def counting_sink(delay_ms: float = 0.0) -> contextlib.AbstractAsyncContextManager[Sink]:
    """The Postmark sink counting every message it accepts per recipient."""
    return postmark_sink(delay_ms, count_recipients=True)


class WorkerPool:
    """``herald worker`` processes that can be SIGKILLed and replaced one by one.

    (``_harness.Workers`` treats any exited process as a failed start, so a pool that
    outlives its members needs its own bookkeeping.)"""

    def __init__(self, env: Mapping[str, str], logs: Path) -> None:
        self._env = dict(env)
        self._logs = logs
        self._started = 0
        self.alive: dict[int, asyncio.subprocess.Process] = {}
        self.killed = 0

    async def start(self, *, wait: bool = True, timeout: float = 60) -> int:
        self._started += 1
        path = self._logs / f"worker-{self._started}.log"
        process = await spawn_worker(self._env, path)
        self.alive[process.pid] = process
        deadline = time.monotonic() + timeout
        while wait and "worker started" not in path.read_text(errors="replace"):
            if time.monotonic() > deadline or process.returncode is not None:
                raise RuntimeError("a worker did not start:\n" + self.log_tail())
            await asyncio.sleep(0.05)
        return process.pid

    async def kill(self, pid: int) -> None:
        process = self.alive.pop(pid)
        process.send_signal(signal.SIGKILL)
        await asyncio.wait_for(process.wait(), 10)
        self.killed += 1

    async def stop(self, timeout: float = 60) -> list[int]:
        """SIGTERM every live worker; their exit codes (0 = drained cleanly)."""
        for process in self.alive.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        codes = []
        for process in self.alive.values():
            try:
                codes.append(await asyncio.wait_for(process.wait(), timeout))
            except TimeoutError:
                process.kill()
                codes.append(await process.wait())
        return codes

    def logs(self) -> str:
        return "\n".join(
            path.read_text(errors="replace") for path in sorted(self._logs.glob("worker-*.log"))
        )

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(
            f"--- {path.name}\n" + "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
            for path in sorted(self._logs.glob("worker-*.log"))
        )


@dataclass
class RunDatabase:
    """A fresh clone of the subscriber template for one run."""

    name: str
    dsn: str
    db: Database


@contextlib.asynccontextmanager
async def fresh_database(admin_dsn: str, template_dsn: str) -> AsyncIterator[RunDatabase]:
    name = f"herald_drill_{uuid.uuid4().hex[:8]}"
    await clone(admin_dsn, name)
    dsn = template_dsn.replace(f"/{TEMPLATE}?", f"/{name}?")
    db = await Database.open(dsn, DatabaseSettings(pool_min_size=1, pool_max_size=2), "bench")
    try:
        yield RunDatabase(name, dsn, db)
    finally:
        await db.close()
        await drop(admin_dsn, name)


def bench_settings(dsn: str, data_dir: Path) -> Settings:
    return Settings(
        database_url=dsn,
        base_url="https://news.herald.test",
        secret_key="b" * 48,
        data_dir=data_dir,
    )


async def publish_issue(db: Database, settings: Settings) -> tuple[uuid.UUID, int, Any]:
    """Publish the benchmark issue; its id, recipient count and the commit's timestamp."""
    service = IssueService(db, settings)
    issue_id = await service.create_draft(ISSUE, created_by=None)
    async with db.connection() as conn:
        recipients = await confirmed_subscribers(conn)
    await service.publish(issue_id)  # the workers queue its deliveries
    async with db.connection() as conn:
        committed_at = await conn.fetchval("SELECT clock_timestamp()")
    return issue_id, recipients, committed_at


async def scalar(db: Database, query: str, *args: object) -> Any:
    async with db.connection() as conn:
        return await conn.fetchval(query, *args)


async def wait_for(
    check: Any, *, timeout: float, what: str, interval: float = 0.1, tail: Any = None
) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}" + (f"\n{tail()}" if tail else ""))
        await asyncio.sleep(interval)


async def issue_sent(db: Database, issue_id: uuid.UUID) -> bool:
    status = await scalar(db, "SELECT status FROM newsletter_issues WHERE id = $1", issue_id)
    return bool(status == "sent")


async def delivery_check(db: Database, issue_id: uuid.UUID) -> dict[str, Any]:
    """Per-subscriber truth from the database: rows per confirmed subscriber and statuses."""
    async with db.connection() as conn:
        row = await conn.fetchrow(
            """
            WITH per_subscriber AS (
                SELECT s.id,
                       count(d.id) AS rows,
                       count(d.id) FILTER (WHERE d.status = 'sent') AS sent
                FROM subscriptions AS s
                LEFT JOIN deliveries AS d ON d.subscriber_id = s.id AND d.issue_id = $1
                WHERE s.status = 'confirmed'
                GROUP BY s.id
            )
            SELECT count(*) AS subscribers,
                   count(*) FILTER (WHERE rows <> 1 OR sent <> 1) AS wrong
            FROM per_subscriber
            """,
            issue_id,
        )
        attempts = await conn.fetchrow(
            """
            SELECT count(*) FILTER (WHERE status = 'failed') AS failed,
                   count(*) FILTER (WHERE attempts > 1) AS retried,
                   max(attempts) AS max_attempts,
                   percentile_disc(0.5) WITHIN GROUP (ORDER BY attempts) AS median_attempts,
                   max(sent_at) AS last_sent
            FROM deliveries WHERE issue_id = $1
            """,
            issue_id,
        )
        confirmed = await conn.fetch("SELECT email FROM subscriptions WHERE status = 'confirmed'")
    return {
        "subscribers": row["subscribers"],
        "wrong_rows": row["wrong"],
        "failed": attempts["failed"],
        "retried_rows": attempts["retried"],
        "max_attempts": attempts["max_attempts"],
        "median_attempts": attempts["median_attempts"],
        "last_sent": attempts["last_sent"],
        "confirmed": {r["email"] for r in confirmed},
    }


def use_results_dir(directory: str | None) -> None:
    """Write this scenario's section somewhere else than ``bench/results/`` (CI smoke)."""
    if directory:
        _report.RESULTS = Path(directory).resolve()


# -- R1 --------------------------------------------------------------------------------


@dataclass
class SoakRun:
    run: int
    seed: int
    subscribers: int
    kills: int
    send_seconds: float
    accepted_by_sink: int
    recipients_reached: int
    lost: int
    wrong_rows: int
    duplicates: int
    duplicate_bound: int
    duplicates_per_kill: float
    max_duplicates_of_a_kill: int
    kills_after_provider_accepted: int
    rows_in_hand_per_kill: list[int]
    duplicates_by_kill: list[int]
    rows_reclaimed: int
    worker_exit_codes: list[int]
    passed: bool


async def busy_workers(db: Database, issue_id: uuid.UUID, alive: set[int]) -> dict[int, str]:
    """Live workers holding this issue's rows in ``sending`` (they are mid-batch), by pid,
    with their ``leased_by`` name. An expired lease counts while its worker lives and
    nobody has taken the rows over: on a loaded machine a batch can outlast the lease."""
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT DISTINCT leased_by FROM deliveries WHERE issue_id = $1 AND status = 'sending'",
            issue_id,
        )
    names = {int(str(row["leased_by"]).rpartition(":")[2]): row["leased_by"] for row in rows}
    return {pid: name for pid, name in names.items() if pid in alive}


async def batch_in_hand(db: Database, issue_id: uuid.UUID, leased_by: str) -> list[str]:
    """Recipients of the rows a killed worker still holds (nobody else can have taken them
    before its lease expires)."""
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT recipient FROM deliveries"
            " WHERE issue_id = $1 AND status = 'sending' AND leased_by = $2",
            issue_id,
            leased_by,
        )
    return [row["recipient"] for row in rows]


async def kill_at_random(
    db: Database,
    issue_id: uuid.UUID,
    pool: WorkerPool,
    rng: random.Random,
    *,
    recipients: int,
    kills: int,
    window_end: float,
) -> list[list[str]]:
    """Kill a mid-batch worker ``kills`` times, spread over 5 % to ``window_end`` of the
    send, replacing it at once each time. The recipients of each killed worker's batch."""
    thresholds = sorted(int(rng.uniform(0.05, window_end) * recipients) for _ in range(kills))
    query = "SELECT count(*) FROM deliveries WHERE issue_id = $1 AND status = 'sent'"
    batches = []
    for number, threshold in enumerate(thresholds, start=1):

        async def progressed(threshold: int = threshold) -> bool:
            return int(await scalar(db, query, issue_id)) >= threshold

        await wait_for(progressed, timeout=180, what=f"{threshold} sent", tail=pool.log_tail)
        await asyncio.sleep(rng.uniform(0.0, 0.2))
        deadline = time.monotonic() + 60
        while not (busy := await busy_workers(db, issue_id, set(pool.alive))):
            if time.monotonic() > deadline:
                raise RuntimeError(f"kill {number}: no worker was mid-batch within 60 s")
            await asyncio.sleep(0.01)
        victim = rng.choice(sorted(busy))
        await pool.kill(victim)
        batches.append(await batch_in_hand(db, issue_id, busy[victim]))
        await pool.start(wait=False)
        log(
            f"  kill {number}/{kills}: worker {victim} after {threshold:,} sent, "
            f"{len(batches[-1])} rows in hand"
        )
    return batches


async def soak_once(
    args: argparse.Namespace, run: int, seed: int, *, admin_dsn: str, template_dsn: str, work: Path
) -> SoakRun:
    rng = random.Random(seed)
    logs = work / f"run-{run}"
    logs.mkdir()
    async with (
        fresh_database(admin_dsn, template_dsn) as database,
        counting_sink(args.sink_delay_ms) as sink,
    ):
        env = worker_env(
            database.dsn,
            sink.base_url,
            work / "data",
            batch_size=args.batch_size,
            concurrency=1,
            lease_seconds=args.lease_seconds,
            poll_interval_seconds=0.5,
        )
        pool = WorkerPool(env, logs)
        for _ in range(args.workers):
            await pool.start()
        db = database.db
        try:
            issue_id, recipients, committed_at = await publish_issue(
                db, bench_settings(database.dsn, work / "data")
            )
            batches = await kill_at_random(
                db,
                issue_id,
                pool,
                rng,
                recipients=recipients,
                kills=args.kills,
                window_end=args.kill_window_end,
            )
            await wait_for(
                lambda: issue_sent(db, issue_id),
                timeout=120 + recipients / 200,
                what="the issue to be sent",
                tail=pool.log_tail,
            )
        finally:
            codes = await pool.stop()
        check = await delivery_check(db, issue_id)
        stats = await sink.stats(recipients=True)
    received: dict[str, int] = stats["recipients"]
    confirmed: set[str] = check["confirmed"]
    lost = len(confirmed - received.keys())
    strangers = len(received.keys() - confirmed)
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    # Which kills caused them: a killed batch is duplicated when it had reached the sink.
    per_kill = [sum(1 for r in batch if received.get(r, 0) > 1) for batch in batches]
    bound = args.kills * args.batch_size
    passed = (
        lost == 0
        and strangers == 0
        and check["wrong_rows"] == 0
        and duplicates <= bound
        and pool.killed == args.kills
        and not any(codes)
    )
    result = SoakRun(
        run=run,
        seed=seed,
        subscribers=recipients,
        kills=pool.killed,
        send_seconds=round((check["last_sent"] - committed_at).total_seconds(), 2),
        accepted_by_sink=stats["accepted"],
        recipients_reached=len(received.keys() & confirmed),
        lost=lost,
        wrong_rows=check["wrong_rows"],
        duplicates=duplicates,
        duplicate_bound=bound,
        duplicates_per_kill=round(duplicates / max(1, pool.killed), 1),
        max_duplicates_of_a_kill=max(per_kill, default=0),
        kills_after_provider_accepted=sum(1 for n in per_kill if n),
        rows_in_hand_per_kill=[len(batch) for batch in batches],
        duplicates_by_kill=per_kill,
        rows_reclaimed=check["retried_rows"],
        worker_exit_codes=codes,
        passed=passed,
    )
    if not passed:
        log(f"run {run} FAILED (seed {seed}, strangers {strangers}): {asdict(result)}")
        log(pool.log_tail())
    return result


def section(args: argparse.Namespace, runs: list[SoakRun]) -> str:
    def col(name: str, fmt: str = ",.0f") -> str:
        return _report.spread([float(getattr(r, name)) for r in runs], fmt)

    # A worker seen holding a lease may record its batch before the SIGKILL lands.
    caught = _report.spread([float(sum(1 for n in r.rows_in_hand_per_kill if n)) for r in runs])
    lost_ok = all(r.lost == 0 and r.wrong_rows == 0 for r in runs)
    bound_ok = all(r.duplicates <= r.duplicate_bound for r in runs)
    worst = max(r.max_duplicates_of_a_kill for r in runs)
    unexplained = sum(r.duplicates - sum(r.duplicates_by_kill) for r in runs)
    lines = [
        "### R1 — crash soak: workers SIGKILLed at random",
        "",
        "```sh",
        _report.command_line(),
        "```",
        "",
        f"{args.subscribers:,} confirmed subscribers (COPY), one issue published, "
        f"{args.workers} real `herald worker` processes (batch {args.batch_size}, one claim "
        f"loop each, lease {args.lease_seconds:g} s) sending through `/email/batch` to the "
        f"standalone Postmark sink (answers after {args.sink_delay_ms:g} ms, counts every "
        f"recipient it accepts). {args.kills} times per run, at random moments between 5 % "
        f"and {args.kill_window_end * 100:g} % of the send, a worker holding a lease "
        "(mid-batch) is SIGKILLed and a new "
        "one started at once; killed batches return when their lease expires. Lost = "
        "confirmed subscribers the sink never received (and every subscriber must have "
        "exactly one `sent` delivery row); duplicates = messages the sink accepted more "
        "than once. The design's bound is one claimed batch per kill: "
        f"{args.kills} x {args.batch_size} = {args.kills * args.batch_size:,}. "
        f"{len(runs)} run(s), seeds {', '.join(str(r.seed) for r in runs)}; {machine()}; "
        f"{_report.today()}.",
        "",
        "| figure | median (min-max) |",
        "|---|---:|",
        f"| send s (publish commit → last `sent`) | {col('send_seconds', ',.1f')} |",
        f"| messages accepted by the sink | {col('accepted_by_sink')} |",
        f"| lost | {col('lost')} |",
        f"| subscribers without exactly one `sent` row | {col('wrong_rows')} |",
        f"| duplicates | {col('duplicates')} |",
        f"| bound (kills x batch) | {col('duplicate_bound')} |",
        f"| duplicates per kill (mean) | {col('duplicates_per_kill', ',.1f')} |",
        f"| duplicates of the worst kill | {col('max_duplicates_of_a_kill')} |",
        f"| kills that caught a batch in hand | {caught} |",
        f"| kills whose batch had reached the sink | {col('kills_after_provider_accepted')} |",
        f"| rows re-claimed (attempts > 1) | {col('rows_reclaimed')} |",
        "",
        f"Targets: lost = 0 in every run — {_report.verdict(lost_ok)}; duplicates within "
        f"the bound in every run — {_report.verdict(bound_ok)}.",
        "",
        f"Finding: {'nobody lost' if lost_ok else '**mail was lost**'} across "
        f"{sum(r.kills for r in runs)} SIGKILLs; a kill costs either nothing (batch not yet "
        "at the provider) or its batch in hand (already accepted, result not recorded): the "
        f"worst kill duplicated {worst:,} messages (bound {args.batch_size}), and "
        f"{unexplained:,} duplicates came from anything but a killed batch.",
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    configure_logging(Settings(log_level="warning", log_format="console"))
    first = args.seed if args.seed is not None else random.randrange(2**32)
    runs: list[SoakRun] = []
    with tempfile.TemporaryDirectory(prefix="herald-soak-") as tmp:
        work = Path(tmp)
        with embedded_postgres() as server:
            admin_dsn = server.dsn("postgres")
            template_dsn = server.dsn(TEMPLATE)
            await prepare_template(admin_dsn, template_dsn, args.subscribers)
            for run in range(1, args.runs + 1):
                seed = first + run - 1
                log(f"run {run}/{args.runs}, seed {seed} (rerun: --seed {seed} --runs 1)")
                result = await soak_once(
                    args, run, seed, admin_dsn=admin_dsn, template_dsn=template_dsn, work=work
                )
                log(
                    f"run {run}: {result.send_seconds:.1f} s, lost {result.lost}, duplicates "
                    f"{result.duplicates} (bound {result.duplicate_bound}), re-claimed "
                    f"{result.rows_reclaimed}, {'pass' if result.passed else 'FAIL'}"
                )
                runs.append(result)
    use_results_dir(args.results)
    data = {
        "scenario": "R1",
        "passed": all(r.passed for r in runs),
        "lost": sum(r.lost for r in runs),
        "median_duplicates": statistics.median(r.duplicates for r in runs),
        "runs": [asdict(r) for r in runs],
    }
    _report.write_section("R1", section(args, runs), data)
    return 0 if data["passed"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="10,000 subscribers, 5 kills, 1 run")
    parser.add_argument("--subscribers", type=int)
    parser.add_argument("--kills", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--lease-seconds", type=float, default=5.0)
    parser.add_argument("--sink-delay-ms", type=float, default=50.0)
    parser.add_argument(
        "--kill-window-end",
        type=float,
        default=0.85,
        help="kills happen between 5 %% and this share of the send (small sends finish "
        "too fast near the end to find a worker mid-batch)",
    )
    parser.add_argument("--seed", type=int, help="seed of the first run (then +1, +2, ...)")
    parser.add_argument("--results", metavar="DIR", help="write R1.md/R1.json here")
    args = parser.parse_args()
    defaults = (10_000, 5, 1) if args.quick else (100_000, 20, 3)
    for name, default in zip(("subscribers", "kills", "runs"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
