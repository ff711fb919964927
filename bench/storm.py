"""R3 — provider storm: the Postmark API fails for a minute while an issue sends, then recovers.

Everything runs on this machine, started by the script: an embedded Postgres, N confirmed
subscribers loaded with ``COPY``, the standalone Postmark sink (``--count-recipients``,
steered over ``POST /_sink/mode``) and ``--workers`` real ``herald worker`` processes with
Herald's **default** delivery settings (batch size, lease, attempts, backoff, provider
timeout: nothing is set, so what is measured is what ships). Per run, on a fresh clone of
the database, the issue is published; once ``--start-at`` of it is sent the sink storms,
one phase after another, each ``--phase-seconds`` long:

1. ``error``: every call answers HTTP 500;
2. ``rate_limit``: every call answers 429 with ``Retry-After: --retry-after`` seconds;
3. ``hang``: every call is read and never answered, so the provider's timeout fires;

then it recovers. Reported: delivered (every subscriber must end with exactly one
``sent`` row, none ``failed``), time from recovery to the last ``sent``, provider calls
during the storm (per phase), attempts per delivery (max, median) against
``max_attempts``, provider timeouts seen by the workers, and duplicates at the sink (a hang
that outlived the lease would show up there).

::

    .venv/bin/python bench/storm.py [--quick] [--runs 3] [--subscribers 20000]
        [--phase-seconds 20] [--results DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

import _report
from _harness import embedded_postgres, machine, worker_env
from herald.core.config import DeliverySettings, EmailSettings, Settings
from herald.core.db import Database
from herald.core.telemetry import configure_logging
from publish import TEMPLATE, prepare_template
from soak import (
    Sink,
    WorkerPool,
    bench_settings,
    counting_sink,
    delivery_check,
    fresh_database,
    log,
    publish_issue,
    scalar,
    use_results_dir,
    wait_for,
)

PHASES = ("error", "rate_limit", "hang")
TIMEOUT_MARK = "no answer from"  # the provider's own words for a call that timed out


@dataclass
class StormRun:
    run: int
    subscribers: int
    sent_before_storm: int
    sent: int
    failed: int
    unsettled: int
    wrong_rows: int
    lost: int
    duplicates: int
    recovery_to_all_sent_s: float
    calls_during_storm: int
    calls_by_phase: dict[str, int]
    max_attempts_used: int
    median_attempts_used: float
    worst_attempts_at_recovery: int
    timeouts_seen: int
    passed: bool


def settings_line() -> str:
    delivery, email = DeliverySettings(), EmailSettings()
    return (
        f"batch {delivery.batch_size}, {delivery.concurrency} claim loop, lease "
        f"{delivery.lease_seconds:g} s, max attempts {delivery.max_attempts}, backoff "
        f"{delivery.retry_base_seconds:g} s doubling (jittered, capped at "
        f"{delivery.retry_max_seconds:g} s), poll {delivery.poll_interval_seconds:g} s, "
        f"provider timeout {email.timeout_seconds:g} s"
    )


async def sent_count(db: Database, issue_id: uuid.UUID) -> int:
    query = "SELECT count(*) FROM deliveries WHERE issue_id = $1 AND status = 'sent'"
    return int(await scalar(db, query, issue_id))


async def settled(db: Database, issue_id: uuid.UUID) -> bool:
    """Nothing left to send (every row sent, failed or suppressed)."""
    query = (
        "SELECT count(*) FROM deliveries WHERE issue_id = $1 AND status IN ('queued', 'sending')"
    )
    return int(await scalar(db, query, issue_id)) == 0


async def storm(sink: Sink, args: argparse.Namespace) -> dict[str, int]:
    """Run the phases; provider calls that arrived in each."""
    calls: dict[str, int] = {}
    for phase in PHASES:
        before = (await sink.stats())["requests_by_mode"].get(phase, 0)
        await sink.set_mode(phase, status=500, retry_after=args.retry_after)
        log(f"  storm: {phase} for {args.phase_seconds:g} s")
        await asyncio.sleep(args.phase_seconds)
        calls[phase] = (await sink.stats())["requests_by_mode"].get(phase, 0) - before
    await sink.set_mode("ok")
    return calls


async def storm_once(
    args: argparse.Namespace, run: int, *, admin_dsn: str, template_dsn: str, work: Path
) -> StormRun:
    logs = work / f"run-{run}"
    logs.mkdir()
    async with (
        fresh_database(admin_dsn, template_dsn) as database,
        counting_sink() as sink,
    ):
        env = worker_env(database.dsn, sink.base_url, work / "data")
        env.pop("HERALD_EMAIL__TIMEOUT_SECONDS")  # the default provider timeout, as shipped
        pool = WorkerPool(env, logs)
        for _ in range(args.workers):
            await pool.start()
        db = database.db
        try:
            issue_id, recipients, _ = await publish_issue(
                db, bench_settings(database.dsn, work / "data")
            )
            threshold = int(recipients * args.start_at)

            async def started() -> bool:
                return await sent_count(db, issue_id) >= threshold

            await wait_for(started, timeout=120, what="the send to start", interval=0.02)
            sent_before = await sent_count(db, issue_id)
            calls = await storm(sink, args)
            recovered_at = await scalar(db, "SELECT clock_timestamp()")
            worst_at_recovery = int(
                await scalar(
                    db, "SELECT max(attempts) FROM deliveries WHERE issue_id = $1", issue_id
                )
            )
            started_wait = time.monotonic()
            try:
                await wait_for(
                    lambda: settled(db, issue_id),
                    timeout=args.recovery_timeout,
                    what="every delivery to settle after the storm",
                    interval=0.2,
                )
                log(f"  settled {time.monotonic() - started_wait:.1f} s after recovery")
            except RuntimeError:
                log(f"  NOT settled {args.recovery_timeout:g} s after recovery")
            unsettled = await scalar(
                db,
                "SELECT count(*) FROM deliveries"
                " WHERE issue_id = $1 AND status IN ('queued', 'sending')",
                issue_id,
            )
        finally:
            codes = await pool.stop()
        check = await delivery_check(db, issue_id)
        stats = await sink.stats(recipients=True)
        timeouts = pool.logs().count(TIMEOUT_MARK)
    received: dict[str, int] = stats["recipients"]
    confirmed: set[str] = check["confirmed"]
    lost = len(confirmed - received.keys())
    duplicates = sum(n - 1 for n in received.values() if n > 1)
    sent = int(check["subscribers"] - check["wrong_rows"])  # each with its one `sent` row
    passed = (
        check["wrong_rows"] == 0
        and check["failed"] == 0
        and unsettled == 0
        and lost == 0
        and duplicates == 0
        and not any(codes)
    )
    result = StormRun(
        run=run,
        subscribers=recipients,
        sent_before_storm=sent_before,
        sent=sent,
        failed=check["failed"],
        unsettled=unsettled,
        wrong_rows=check["wrong_rows"],
        lost=lost,
        duplicates=duplicates,
        recovery_to_all_sent_s=round(
            max(0.0, (check["last_sent"] - recovered_at).total_seconds()), 1
        ),
        calls_during_storm=sum(calls.values()),
        calls_by_phase=calls,
        max_attempts_used=check["max_attempts"],
        median_attempts_used=float(check["median_attempts"]),
        worst_attempts_at_recovery=worst_at_recovery,
        timeouts_seen=timeouts,
        passed=passed,
    )
    if not passed:
        log(f"run {run} FAILED: {asdict(result)} exit codes {codes}")
    return result


def finding(runs: list[StormRun], max_attempts: int) -> str:
    worst = max(r.max_attempts_used for r in runs)
    failed = max(r.failed + r.unsettled for r in runs)
    rate = max(r.calls_by_phase["rate_limit"] for r in runs)
    if failed:
        return (
            f"up to {failed:,} deliveries were failed or still stuck after a one-minute "
            f"outage; the worst used {worst} of its {max_attempts} attempts "
            f"(up to {rate:,} calls in the 429 phase alone)."
        )
    tail = statistics.median(r.recovery_to_all_sent_s for r in runs)
    last = max(r.worst_attempts_at_recovery for r in runs)
    delivery = DeliverySettings()
    rung = min(delivery.retry_max_seconds, delivery.retry_base_seconds * 2 ** (last - 1))
    return (
        f"everything was delivered once the sink recovered; the worst delivery used {worst} "
        f"of its {max_attempts} attempts and the 429 phase drew at most {rate:,} calls: "
        "exponential backoff spaces the retries (a `Retry-After` can shorten the ladder by "
        f"one rung only). The {tail:.0f} s tail after recovery (median) is the backoff "
        f"still pending on rows whose attempt {last} failed as the storm ended: that rung "
        f"waits {rung / 2:g}-{rung:g} s (jittered per row), plus up to one poll interval."
    )


def section(args: argparse.Namespace, runs: list[StormRun]) -> str:
    def col(name: str, fmt: str = ",.0f") -> str:
        return _report.spread([float(getattr(r, name)) for r in runs], fmt)

    def phase(name: str) -> str:
        return _report.spread([float(r.calls_by_phase[name]) for r in runs])

    max_attempts = DeliverySettings().max_attempts
    delivered_ok = all(r.failed == 0 and r.wrong_rows == 0 and r.lost == 0 for r in runs)
    worst = max(r.max_attempts_used for r in runs)
    budget_ok = worst <= args.attempt_target
    lease_ok = all(r.duplicates == 0 for r in runs)
    lines = [
        "### R3 — provider storm: 5xx, 429, hangs, then recovery",
        "",
        "```sh",
        _report.command_line(),
        "```",
        "",
        f"{args.subscribers:,} confirmed subscribers (COPY), one issue, {args.workers} real "
        "`herald worker` processes with Herald's default delivery settings "
        f"({settings_line()}), sending through `/email/batch` to the standalone Postmark "
        f"sink. Once {args.start_at:.0%} of the issue is sent the sink storms for "
        f"{len(PHASES) * args.phase_seconds:g} s: {args.phase_seconds:g} s of HTTP 500, "
        f"{args.phase_seconds:g} s of 429 with `Retry-After: {args.retry_after:g}`, "
        f"{args.phase_seconds:g} s of hanging (request read, never answered), then it "
        "recovers. Attempts are the `attempts` column of every delivery at the end "
        "(including the successful one); timeouts are the provider's `no answer` errors in "
        f"the worker logs. {len(runs)} run(s); {machine()}; {_report.today()}.",
        "",
        "| figure | median (min-max) |",
        "|---|---:|",
        f"| sent before the storm began | {col('sent_before_storm')} |",
        f"| subscribers with exactly one `sent` row | {col('sent')} |",
        f"| `failed` deliveries | {col('failed')} |",
        f"| still queued {args.recovery_timeout:g} s after recovery | {col('unsettled')} |",
        f"| lost (never reached the sink) | {col('lost')} |",
        f"| duplicates at the sink | {col('duplicates')} |",
        f"| recovery → last `sent`, s | {col('recovery_to_all_sent_s', ',.1f')} |",
        f"| provider calls during the storm | {col('calls_during_storm')} |",
        f"| … during 500s / 429s / hang | {phase('error')} / {phase('rate_limit')} / "
        f"{phase('hang')} |",
        f"| provider timeouts seen by the workers | {col('timeouts_seen')} |",
        f"| attempts per delivery: max | {col('max_attempts_used')} |",
        f"| attempts per delivery: median | {col('median_attempts_used', ',.1f')} |",
        f"| highest attempt count when the storm ended | {col('worst_attempts_at_recovery')} |",
        "",
        f"Targets: 100 % delivered afterwards, none `failed` — {_report.verdict(delivered_ok)}; "
        f"no attempt budget burnt in a hot loop (at most {args.attempt_target} attempts per "
        f"delivery across the storm, of {max_attempts}) — {_report.verdict(budget_ok)}; a hang "
        f"never outlives the lease (no duplicates) — {_report.verdict(lease_ok)}.",
        "",
        f"Finding: {finding(runs, max_attempts)}",
    ]
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    configure_logging(Settings(log_level="warning", log_format="console"))
    runs: list[StormRun] = []
    with tempfile.TemporaryDirectory(prefix="herald-storm-") as tmp:
        work = Path(tmp)
        with embedded_postgres() as server:
            admin_dsn = server.dsn("postgres")
            template_dsn = server.dsn(TEMPLATE)
            await prepare_template(admin_dsn, template_dsn, args.subscribers)
            for run in range(1, args.runs + 1):
                log(f"run {run}/{args.runs}")
                result = await storm_once(
                    args, run, admin_dsn=admin_dsn, template_dsn=template_dsn, work=work
                )
                log(
                    f"run {run}: failed {result.failed}, unsettled {result.unsettled}, "
                    f"lost {result.lost}, duplicates {result.duplicates}, "
                    f"calls {result.calls_by_phase}, attempts max "
                    f"{result.max_attempts_used} median {result.median_attempts_used}, "
                    f"recovery → all sent {result.recovery_to_all_sent_s} s, "
                    f"{'pass' if result.passed else 'FAIL'}"
                )
                runs.append(result)
    use_results_dir(args.results)
    data = {
        "scenario": "R3",
        "passed": all(r.passed for r in runs),
        "failed": sum(r.failed for r in runs),
        "lost": sum(r.lost for r in runs),
        "max_attempts_used": max(r.max_attempts_used for r in runs),
        "median_recovery_s": statistics.median(r.recovery_to_all_sent_s for r in runs),
        "runs": [asdict(r) for r in runs],
    }
    _report.write_section("R3", section(args, runs), data)
    return 0 if data["passed"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="2,000 subscribers, 5 s phases")
    parser.add_argument("--subscribers", type=int)
    parser.add_argument("--phase-seconds", type=float)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--retry-after", type=float, default=1.0, help="the 429s' Retry-After")
    parser.add_argument("--start-at", type=float, default=0.1, help="storm once this is sent")
    parser.add_argument("--attempt-target", type=int, default=5)
    parser.add_argument("--recovery-timeout", type=float, default=300.0)
    parser.add_argument("--results", metavar="DIR", help="write R3.md/R3.json here")
    args = parser.parse_args()
    defaults = (2_000, 5.0, 1) if args.quick else (20_000, 20.0, 3)
    for name, default in zip(("subscribers", "phase_seconds", "runs"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    raise SystemExit(main())
