"""API1 — the JSON API's list and search endpoints at 1M subscribers.

The database is A1's (``bench/admin.py``: ``--subscribers`` subscribers, 80 % confirmed,
10 % pending, 10 % unsubscribed, varied names and domains, sign-ups over two years, and
the deliveries of ``--deliveries / --subscribers`` sent issues), loaded the same way and
kept with ``--cluster DIR``. The app runs in-process (httpx over ASGI: server time, no
network) with an admin's API key; each case is requested ``--requests`` times after 3
warm-ups; p50 / p95 / max against the issue's 50 ms target::

    .venv/bin/python bench/api_lists.py                                  # 1M subscribers
    .venv/bin/python bench/api_lists.py --subscribers 20000 --deliveries 20000   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from _harness import embedded_postgres, log, machine
from _load import percentile
from _report import command_line, today, verdict
from admin import DOMAINS, PG_SETTINGS, a1_database, revision, sample, timed
from herald.auth.domain import Scope
from herald.auth.passwords import Passwords
from herald.auth.service import AuthService
from herald.core.config import Settings
from herald.core.db import Database

TARGET_MS = 50.0
PASSWORD = "api1-bench-Pa55word-31c9"  # noqa: S105 - a throw-away benchmark login
URL = "/api/v1/subscribers"


def q(**params: Any) -> str:
    return f"{URL}?{httpx.QueryParams(params)}"


async def cases(c: httpx.AsyncClient, picks: dict[str, Any]) -> dict[str, list[str]]:
    emails = picks["emails"]
    locals_ = [e.split("@")[0] for e in emails]
    rare = [part[len(part) // 3 :][:8] for part in locals_]
    first = (await c.get(URL)).json()
    deep = (await c.get(q(created_before=picks["deep_at"], limit=1))).json()
    month = (await c.get(q(limit=1))).json()["items"][0]["created_at"]
    issue = f"/api/v1/issues/{picks['issue']}/deliveries"
    issue_next = (await c.get(issue)).json()["next_cursor"]
    return {
        "list, first page (50)": [URL],
        "list, first page (200)": [q(limit=200)],
        "list, next page (cursor)": [q(cursor=first["next_cursor"])],
        "list, middle of the list (cursor)": [q(cursor=deep["next_cursor"])],
        "list, oldest first": [q(order="oldest")],
        "status=confirmed": [q(status="confirmed")],
        "status=pending_confirmation": [q(status="pending_confirmation")],
        "created_after: the last day": [q(created_after=month[:10] + "T00:00:00Z")],
        "search, contains (rare, 8 chars)": [q(search=t) for t in rare],
        "search, contains (common: a domain)": [q(search=d) for d in DOMAINS],
        "search, contains (a whole address)": [q(search=e) for e in emails],
        "search + status=pending_confirmation": [
            q(search=t, status="pending_confirmation") for t in rare
        ],
        "search, 2 characters (no trigram)": [q(search=p[:2]) for p in locals_],
        "one subscriber": [f"{URL}/{picks['typical']}"],
        "issues list": ["/api/v1/issues"],
        "issue deliveries, first page": [issue],
        "issue deliveries, next page": [f"{issue}?{httpx.QueryParams(cursor=issue_next)}"],
    }


async def measure(dsn: str, rounds: int, picks: dict[str, Any]) -> dict[str, list[float]]:
    from herald.composition.app import create_app

    settings = Settings(
        database_url=dsn,
        secret_key="s" * 48,
        base_url="http://herald.bench",
        data_dir=Path(tempfile.mkdtemp(prefix="herald-api1-")),
    )  # type: ignore[call-arg]
    db = await Database.open(dsn, settings.db, "herald-bench")
    passwords = Passwords(memory_kib=8 * 1024, time_cost=1, threads=1)
    try:
        auth = AuthService(db, settings, passwords)
        try:
            user = await auth.create_user("api1", PASSWORD)
        except Exception:  # noqa: BLE001 - a kept database has the user already
            async with db.connection() as conn:
                user = await conn.fetchval("SELECT id FROM users WHERE username = 'api1'")
        _, key = await auth.create_api_key(user, "api1 bench", Scope.READ)
    finally:
        passwords.close()
    app = create_app(settings, db=db)
    rng = random.Random(7)
    results: dict[str, list[float]] = {}
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport,
                base_url="http://herald.bench",
                headers={"Authorization": f"Bearer {key}"},
            ) as c:
                for name, urls in (await cases(c, picks)).items():
                    rng.shuffle(urls)
                    results[name] = await timed(c, urls, rounds)
                    log(
                        f"{name}: p50 {percentile(results[name], 50):.1f} ms, "
                        f"p95 {percentile(results[name], 95):.1f} ms"
                    )
    finally:
        await db.close()
    return results


def report(args: argparse.Namespace, results: dict[str, list[float]]) -> bool:
    ok = all(percentile(v, 95) <= TARGET_MS for v in results.values())
    lines = [
        "### API1 — JSON API lists and search at scale",
        "",
        f"`{command_line()}`",
        "",
        f"{args.subscribers:,} subscribers (A1's data); embedded Postgres with "
        + ", ".join(f"{k}={v}" for k, v in PG_SETTINGS.items())
        + f"; the app in-process over ASGI (server time), {args.requests} requests per case "
        f"after 3 warm-ups. {machine()}, {today()}.",
        "",
        "| Request | p50 ms | p95 ms | max ms | target p95 ≤ 50 ms |",
        "|---|---:|---:|---:|---|",
    ]
    for name, values in results.items():
        p95 = percentile(values, 95)
        lines.append(
            f"| {name} | {percentile(values, 50):.1f} | {p95:.1f} | {max(values):.1f} "
            f"| {verdict(p95 <= TARGET_MS)} |"
        )
    print("\n".join(lines))
    return ok


async def run(args: argparse.Namespace) -> int:
    with embedded_postgres(PG_SETTINGS, keep=args.cluster) as server:
        dsn, took = await a1_database(server, args.subscribers, args.deliveries, args.heavy)
        if took:
            log(f"loaded: {took}")
        log(f"schema at {await revision(dsn)}")
        picks = await sample(dsn)
        conn = await asyncpg.connect(dsn)
        try:
            deep = await conn.fetchval(
                "SELECT created_at FROM subscriptions ORDER BY created_at DESC OFFSET $1 LIMIT 1",
                args.subscribers // 2,
            )
        finally:
            await conn.close()
        picks["deep_at"] = deep.isoformat()
        results = await measure(dsn, args.requests, picks)
    ok = report(args, results)
    return 0 if ok or args.no_fail else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--heavy", type=int, default=2_000, help="deliveries of one subscriber")
    parser.add_argument("--requests", type=int, default=40, help="per case (at least 20)")
    parser.add_argument("--cluster", type=Path, default=None, help="keep the cluster here")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 on a missed target")
    args = parser.parse_args()
    if args.requests < 20:
        parser.error("--requests: at least 20")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
