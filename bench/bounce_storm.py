"""B1 — bounce storm: 100,000 Postmark webhook events within a minute, then a loss check.

Started by the script, on loopback: an embedded Postgres (default settings: durable
commits), a migrated database with N confirmed subscribers and one sent delivery each
(``provider_message_id`` ``pm-<n>``), loaded with COPY, and ``herald serve --workers W``
(uvicorn, production settings, the webhook's basic auth set). A load generator in its own
process (aiohttp on uvloop, ``--connections`` kept-alive connections) posts one Postmark record per
request to ``POST /webhooks/postmark``, open loop: request *i* is due at ``start + i /
rate`` whether or not earlier ones answered, and its latency counts from that time (a
stalled server is not hidden by a stalled client). The records, reader *n* for event *n*:

* 60 % ``Bounce`` ``HardBounce``, 10 % ``SpamComplaint``: each suppresses its reader;
* 10 % ``Bounce`` ``SoftBounce`` (one per address: under the limit, nothing suppressed),
  10 % ``Bounce`` ``Blocked`` (never suppresses), 10 % ``Delivery``;
* three in four carry Herald's delivery id in ``Metadata``, the rest are found by
  ``MessageID``; then ``--replays`` of them are sent again (must store nothing).

Afterwards the database is checked: exactly one ``email_events`` row per event, every
matched to its delivery, ``suppressions`` exactly the hard-bounced and complaining
addresses with the right reasons, those subscriptions unsubscribed and no other.
Reported: events/s (stored rows over the time from the first request to the last answer),
p50/p99/max latency, errors, and the CPU of the web processes, Postgres and the generator::

    .venv/bin/python bench/bounce_storm.py                # 100,000 events at 1,667/s
    .venv/bin/python bench/bounce_storm.py --quick        # 10,000 at 500/s
    .venv/bin/python bench/bounce_storm.py --events 100000 --rate 1667 --web-processes 2

Target: 100,000 events in one minute (1,667/s) with 0 errors and nothing lost.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg

from _harness import (
    children,
    cpu_seconds,
    embedded_postgres,
    log,
    machine,
    migrated_database,
    postmaster_pid,
)
from _web import free_port, herald_command, herald_env, web_server

USER, PASSWORD = "postmark", "bounce-storm-webhook-password"
AUTHORIZATION = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
# Event n's record by n % 10.
KINDS = ("hard",) * 6 + ("complaint", "soft", "blocked", "delivery")
SUPPRESSING = {"hard": "hard_bounce", "complaint": "complaint"}


def body(n: int, delivery_id: int) -> bytes:
    """Event ``n``'s webhook body, as Postmark documents each record type."""
    kind = KINDS[n % 10]
    email, message_id = f"reader{n}@example.com", f"pm-{n}"
    metadata = {"herald_delivery": str(delivery_id)} if n % 4 else {}
    record: dict[str, Any]
    if kind == "delivery":
        record = {
            "RecordType": "Delivery",
            "MessageStream": "broadcast",
            "MessageID": message_id,
            "Recipient": email,
            "DeliveredAt": "2026-12-05T10:00:00.1234567Z",
            "Details": "smtp;250 2.0.0 OK",
            "Tag": "",
            "ServerID": 23,
            "Metadata": metadata,
        }
    else:
        bounce_type = {
            "hard": "HardBounce",
            "complaint": "SpamComplaint",
            "soft": "SoftBounce",
            "blocked": "Blocked",
        }[kind]
        record = {
            "RecordType": "SpamComplaint" if kind == "complaint" else "Bounce",
            "MessageStream": "broadcast",
            "ID": 4_000_000_000 + n,
            "Type": bounce_type,
            "TypeCode": 1,
            "Name": bounce_type,
            "Tag": "",
            "MessageID": message_id,
            "Metadata": metadata,
            "ServerID": 23,
            "Description": "The server was unable to deliver your message.",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
            "Email": email,
            "From": "newsletter@herald.test",
            "BouncedAt": "2026-12-05T10:00:00.1234567Z",
            "DumpAvailable": False,
            "Inactive": kind in SUPPRESSING,
            "CanActivate": True,
            "Subject": "The weekly issue",
        }
    return json.dumps(record).encode()


# -- the load generator (its own process: ``--generate``) -----------------------------


def summary(
    latencies: list[float], statuses: dict[int, int], details: dict[str, int]
) -> dict[str, Any]:
    latencies.sort()
    return {
        "statuses": statuses,
        "errors": sum(n for s, n in statuses.items() if s != 200),
        "details": details,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "max_ms": 1000 * latencies[-1],
    }


def storm_bodies(events: int, replays: int, first_delivery_id: int) -> list[bytes]:
    """Every event once, in order, then ``replays`` of them again."""
    again = list(range(0, events, max(1, events // max(1, replays))))[:replays]
    return [body(n, first_delivery_id + n) for n in [*range(events), *again]]


async def attempt(session: Any, url: str, payload: bytes, details: dict[str, int]) -> int:
    """One POST; its status (0: no answer), a refusal's reason counted in ``details``."""
    import aiohttp

    status = 0
    headers = {"Content-Type": "application/json", "Authorization": AUTHORIZATION}
    try:
        async with session.post(url, data=payload, headers=headers) as response:
            status = response.status
            answer = await response.read()
            if status != 200:
                key = f"{status}: {answer[:120].decode(errors='replace')}"
                details[key] = details.get(key, 0) + 1
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        key = f"{type(exc).__name__}: {exc}"[:120]
        details[key] = details.get(key, 0) + 1
    return status


async def generate(args: argparse.Namespace) -> None:
    import aiohttp

    bodies = storm_bodies(args.events, args.replays, args.first_delivery_id)
    url = args.url.rstrip("/") + "/webhooks/postmark"
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    details: dict[str, int] = {}
    pending: set[asyncio.Task[None]] = set()
    connector = aiohttp.TCPConnector(limit=args.connections)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=60)
    failed = 0
    answered: list[float] = []  # when each first attempt was answered

    async def one(session: aiohttp.ClientSession, payload: bytes, scheduled: float) -> None:
        """The first attempt's latency and status count; a refused one is retried the way
        Postmark retries a webhook (later, a few times), so a 503 is not a lost event."""
        nonlocal failed
        status = await attempt(session, url, payload, details)
        answered.append(time.monotonic())
        latencies.append(answered[-1] - scheduled)
        statuses[status] = statuses.get(status, 0) + 1
        for _ in range(args.retries):
            if status == 200:
                return
            await asyncio.sleep(args.retry_delay)
            status = await attempt(session, url, payload, details)
        if status != 200:
            failed += 1

    cpu0 = time.process_time()
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        print("STARTED", flush=True)
        start = time.monotonic()
        for i, payload in enumerate(bodies):
            scheduled = start + i / args.rate
            delay = scheduled - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(one(session, payload, scheduled))
            pending.add(task)
            task.add_done_callback(pending.discard)
        sent_all = time.monotonic() - start
        if pending:
            await asyncio.wait(pending)
        elapsed = time.monotonic() - start
    result = summary(latencies, statuses, details)
    result.update(
        requests=len(bodies),
        seconds=elapsed,
        schedule_seconds=sent_all,
        failed_after_retries=failed,
        first_pass_seconds=max(answered) - start,
        first_pass_ok=statuses.get(200, 0),
        generator_cpu_seconds=time.process_time() - cpu0,
    )
    print("RESULT " + json.dumps(result), flush=True)


# -- the scenario --------------------------------------------------------------------


async def load_readers(dsn: str, count: int) -> int:
    """``count`` confirmed subscribers, each with one sent delivery; the first delivery's
    id (the others follow in order)."""
    conn = await asyncpg.connect(dsn)
    try:
        ids = [uuid.uuid4() for _ in range(count)]
        await conn.copy_records_to_table(
            "subscriptions",
            records=(
                (ids[n], f"reader{n}@example.com", f"Reader {n}", "confirmed") for n in range(count)
            ),
            columns=["id", "email", "name", "status"],
        )
        first = await conn.fetchval("SELECT nextval('deliveries_id_seq')") + 1
        await conn.copy_records_to_table(
            "deliveries",
            records=(
                ("test", f"reader{n}@example.com", ids[n], "sent", 5, f"pm-{n}")
                for n in range(count)
            ),
            columns=[
                "kind",
                "recipient",
                "subscriber_id",
                "status",
                "max_attempts",
                "provider_message_id",
            ],
        )
        low = await conn.fetchval("SELECT min(id) FROM deliveries")
        assert low == first, (low, first)
        await conn.execute("VACUUM ANALYZE subscriptions, list_memberships, deliveries")
        return int(first)
    finally:
        await conn.close()


async def check(dsn: str, events: int, first_delivery: int) -> dict[str, Any]:
    """What the database holds after the storm, and whether it is exactly right."""
    expected_suppressed = {
        reason: sum(1 for n in range(events) if SUPPRESSING.get(KINDS[n % 10]) == reason)
        for reason in SUPPRESSING.values()
    }
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchval("SELECT count(*) FROM email_events")
        matched = await conn.fetchval(
            "SELECT count(*) FROM email_events e JOIN deliveries d ON d.id = e.delivery_id"
            " WHERE d.recipient = 'reader' || (e.delivery_id - $1) || '@example.com'"
            " AND e.subscriber_id = d.subscriber_id",
            first_delivery,
        )
        by_reason = {
            r["reason"]: int(r["n"])
            for r in await conn.fetch("SELECT reason, count(*) AS n FROM suppressions GROUP BY 1")
        }
        wrong = await conn.fetchval(
            "SELECT count(*) FROM suppressions s JOIN subscriptions u"
            " ON s.address_key = herald_address_key(u.email)"
            " WHERE u.status <> 'unsubscribed'"
        )
        unsubscribed = await conn.fetchval(
            "SELECT count(*) FROM subscriptions WHERE status = 'unsubscribed'"
        )
        marked = await conn.fetchval("SELECT count(*) FROM email_events WHERE suppressed")
    finally:
        await conn.close()
    total = sum(expected_suppressed.values())
    passed = (
        rows == events
        and matched == events
        and by_reason == expected_suppressed
        and wrong == 0
        and unsubscribed == total
        and marked == total
    )
    return {
        "rows": rows,
        "matched": matched,
        "suppressions": by_reason,
        "expected_suppressions": expected_suppressed,
        "subscribed_despite_suppression": wrong,
        "unsubscribed": unsubscribed,
        "marked_suppressed": marked,
        "lost": events - rows,
        "passed": passed,
    }


async def storm(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="herald-bounce-storm-"))
    with embedded_postgres() as server:
        admin_dsn = server.dsn("postgres")
        dsn = server.dsn("herald_bounces")
        await migrated_database(admin_dsn, dsn, "herald_bounces")
        started = time.perf_counter()
        first_delivery = await load_readers(dsn, args.events)
        seconds = time.perf_counter() - started
        log(f"{args.events:,} readers and deliveries loaded in {seconds:.1f} s")
        port = free_port()
        env = herald_env(dsn, "http://127.0.0.1:9", work / "data", port)
        env["HERALD_EMAIL__POSTMARK__WEBHOOK_USERNAME"] = USER
        env["HERALD_EMAIL__POSTMARK__WEBHOOK_PASSWORD"] = PASSWORD
        env.update(item.split("=", 1) for item in args.env)
        command = herald_command("uvicorn", args.web_processes, port)
        async with web_server(command, env, port, work / "web.log") as web:
            await asyncio.sleep(1)
            postmaster = postmaster_pid(server)
            groups = {"web": web.pids, "postgres": children(postmaster)}
            before = {name: cpu_seconds(pids) for name, pids in groups.items()}
            generator = await asyncio.create_subprocess_exec(
                sys.executable,
                __file__,
                "--generate",
                "--url",
                web.base_url,
                "--events",
                str(args.events),
                "--rate",
                str(args.rate),
                "--replays",
                str(args.replays),
                "--connections",
                str(args.connections),
                "--first-delivery-id",
                str(first_delivery),
                "--retries",
                str(args.retries),
                "--retry-delay",
                str(args.retry_delay),
                stdout=asyncio.subprocess.PIPE,
            )
            assert generator.stdout is not None
            line = await asyncio.wait_for(generator.stdout.readline(), 120)
            if line.strip() != b"STARTED":
                raise RuntimeError(f"the generator did not start: {line!r}")
            log(f"storm: {args.events:,} events at {args.rate:g}/s, then {args.replays:,} replays")
            out = (await generator.stdout.read()).decode()
            if await generator.wait() != 0:
                raise RuntimeError(f"the generator failed:\n{out}")
            load = json.loads(out.split("RESULT ", 1)[1])
            groups["postgres"] = sorted(set(groups["postgres"]) | set(children(postmaster)))
            cpu = {
                name: round(cpu_seconds(pids) - before[name], 1) for name, pids in groups.items()
            }
            web_tail = web.log_tail(5)
        verdict = await check(dsn, args.events, first_delivery)
    cpu["generator"] = round(load["generator_cpu_seconds"], 1)
    result = {
        "events": args.events,
        "replays": args.replays,
        "rate": args.rate,
        "web_processes": args.web_processes,
        # Events answered 200 at their first attempt, over the time until the last first
        # attempt was answered (retries, seconds later, are not the server's speed).
        "events_per_second": load["first_pass_ok"] / load["first_pass_seconds"],
        "cpu": cpu,
        **load,
        **verdict,
    }
    if load["errors"]:
        log(f"refusals: {load['details']}\nweb log:\n{web_tail}")
    return result


def report(results: list[dict[str, Any]], args: argparse.Namespace) -> str:
    def med(key: str) -> float:
        return statistics.median(float(r[key]) for r in results)

    lines = [
        f"{len(results)} run(s); {machine()}, Python {platform.python_version()}.",
        "",
        "| | median (min-max) |",
        "|---|---|",
    ]
    for key, label, fmt in (
        ("events_per_second", "events stored per second (first attempts)", ",.0f"),
        ("seconds", "first request to last answer, s", ",.1f"),
        ("p50_ms", "latency p50, ms", ",.1f"),
        ("p99_ms", "latency p99, ms", ",.1f"),
        ("max_ms", "latency max, ms", ",.0f"),
        ("errors", "first attempts refused (non-200, socket errors)", ",.0f"),
        ("failed_after_retries", "refused after retries", ",.0f"),
        ("lost", "events lost (requested - stored)", ",.0f"),
    ):
        values = [float(r[key]) for r in results]
        low, mid, high = (
            format(v, fmt) for v in (min(values), statistics.median(values), max(values))
        )
        spread = f"{mid} ({low}-{high})"
        lines.append(f"| {label} | {spread} |")
    for group in ("web", "postgres", "generator"):
        values = [float(r["cpu"][group]) for r in results]
        lines.append(f"| CPU s, {group} | {statistics.median(values):,.1f} |")
    exact = all(r["passed"] for r in results)
    lines.append(f"| database exactly right (rows, matches, suppressions) | {exact} |")
    lines.append(
        f"| target: the offered {args.rate:,.0f} events/s (100k in a minute: 1,667/s) | "
        f"{'met' if med('events_per_second') >= args.rate * 0.98 else '**missed**'} |"
    )
    return "\n".join(lines)


async def main_async(args: argparse.Namespace) -> int:
    results = []
    for run in range(1, args.runs + 1):
        log(f"run {run}/{args.runs}")
        result = await storm(args)
        log(json.dumps({k: v for k, v in result.items() if k != "details"}, default=str))
        results.append(result)
    print(report(results, args))
    if args.results:
        await asyncio.to_thread(
            Path(args.results).write_text, json.dumps(results, indent=2, default=str)
        )
    return 0 if all(r["passed"] for r in results) else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=100_000 / 60)
    parser.add_argument("--replays", type=int, default=1_000)
    parser.add_argument("--connections", type=int, default=128)
    parser.add_argument("--retries", type=int, default=5, help="per refused request")
    parser.add_argument("--retry-delay", type=float, default=5.0, help="seconds")
    parser.add_argument("--web-processes", type=int, default=2)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="10,000 events at 500/s")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for herald serve")
    parser.add_argument("--results", help="write every run's figures as JSON here")
    parser.add_argument("--generate", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--first-delivery-id", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        # On uvloop (Herald's own web processes run on it): the generator shares the two
        # cores with what it measures, so the less CPU it takes, the more Herald gets.
        import uvloop

        uvloop.run(generate(args))
        return 0
    if args.quick:
        args.events, args.rate, args.replays = 10_000, 500.0, 100
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())
