"""A1 — the admin's subscriber pages, dashboard and issue pages at 1M subscribers and 10M
delivery rows.

One embedded Postgres (``--cluster DIR`` keeps it, and the loaded database, between
invocations) gets ``--subscribers`` subscribers (80 % confirmed, 10 % pending, 10 %
unsubscribed; varied names and domains; sign-up times spread over two years) and
``--deliveries`` issue deliveries (as many issues as it takes, every subscriber getting
each), plus one subscriber with ``--heavy`` confirmation deliveries of their own, and one
draft issue. Loading happens on the schema of migration 0009; the later migrations (the
list's indexes, built concurrently, the dashboard's per-day table, the issue pages'
index) run afterwards, timed (on a kept database, the ones it lacks). Then the app
runs in-process (httpx over ASGI: server time, no network) signed in as an admin, and
each page is requested ``--requests`` times after 3 warm-ups; p50 / p95 / max per page
against the 100 ms p95 target. The issue pages are those of the oldest issue (sent, 1M
recipients): the page with each recipient filter and its next page, the first
``progress`` event of its event stream, and the draft's publish confirmation::

    .venv/bin/python bench/admin.py                                   # 1M / 10M
    .venv/bin/python bench/admin.py --subscribers 20000 --deliveries 100000   # smoke
    .venv/bin/python bench/admin.py --cluster DIR --only issue,draft          # issue pages
"""

from __future__ import annotations

import argparse
import asyncio
import random
import re
import sys
import tempfile
import time
from html import unescape
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from _harness import embedded_postgres, log, machine
from _load import percentile
from _report import command_line, today, verdict, write_section
from herald.auth.passwords import Passwords
from herald.auth.service import AuthService
from herald.core import migrate
from herald.core.config import Settings
from herald.core.db import Database, quote_ident

TARGET_MS = 100.0
PASSWORD = "a1-bench-Pa55word-77f1"  # noqa: S105 - a throw-away benchmark login
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
OLDER = re.compile(r'rel="next" href="([^"]+)"')
NEXT_RECIPIENTS = re.compile(r'id="next-recipients" href="([^"]+)"')
DRAFT_TITLE = "A1 draft"
PG_SETTINGS = {"shared_buffers": "1GB", "maintenance_work_mem": "512MB", "work_mem": "16MB"}
FIRST = [
    "ada",
    "alan",
    "grace",
    "linus",
    "marie",
    "nikola",
    "rosalind",
    "tim",
    "barbara",
    "edsger",
    "donald",
    "frances",
    "john",
    "katherine",
    "margaret",
    "ken",
    "dennis",
    "radia",
    "shafi",
    "leslie",
    "hedy",
    "annie",
    "claude",
    "sophie",
    "émilie",
    "jürgen",
]
LAST = [
    "lovelace",
    "turing",
    "hopper",
    "torvalds",
    "curie",
    "tesla",
    "franklin",
    "berners",
    "liskov",
    "dijkstra",
    "knuth",
    "allen",
    "backus",
    "johnson",
    "hamilton",
    "thompson",
    "ritchie",
    "perlman",
    "goldwasser",
    "lamport",
    "lamarr",
    "easley",
    "shannon",
    "wilson",
]
DOMAINS = [
    "gmail.com",
    "example.org",
    "fastmail.com",
    "proton.me",
    "yahoo.co.uk",
    "uni-heidelberg.de",
    "company.example",
    "outlook.com",
    "web.de",
    "icloud.com",
]


async def load(dsn: str, subscribers: int, deliveries: int, heavy: int) -> dict[str, float]:
    conn = await asyncpg.connect(dsn)
    took: dict[str, float] = {}
    try:
        started = time.perf_counter()
        await conn.execute(
            """
            INSERT INTO subscriptions (id, email, name, status, created_at, updated_at,
                                       confirmed_at, unsubscribed_at)
            SELECT gen_random_uuid(),
                   f[1 + n % cardinality(f)] || '.' || l[1 + (n / 7) % cardinality(l)] || n
                       || '@' || d[1 + (n / 3) % cardinality(d)],
                   initcap(f[1 + n % cardinality(f)]) || ' '
                       || initcap(l[1 + (n / 7) % cardinality(l)]),
                   CASE WHEN n % 10 = 0 THEN 'pending_confirmation'
                        WHEN n % 10 = 1 THEN 'unsubscribed' ELSE 'confirmed' END,
                   at, at,
                   CASE WHEN n % 10 <> 0 THEN at + interval '5 minutes' END,
                   CASE WHEN n % 10 = 1 THEN at + interval '30 days' END
            FROM generate_series(1, $1::integer) AS n,
                 LATERAL (SELECT now() - make_interval(secs => ($1 - n) * (63072000.0 / $1))
                          AS at) AS t,
                 (SELECT $2::text[] AS f, $3::text[] AS l, $4::text[] AS d) AS words
            """,
            subscribers,
            FIRST,
            LAST,
            DOMAINS,
        )
        took["subscribers"] = time.perf_counter() - started
        issues = max(1, round(deliveries / subscribers))
        started = time.perf_counter()
        await conn.execute(
            """
            INSERT INTO newsletter_issues (id, title, html_content, text_content, status,
                                           published_at, completed_at, recipients)
            SELECT gen_random_uuid(), 'Issue ' || i, '<p>hi</p>', 'hi', 'sent',
                   now() - make_interval(days => 7 * ($1 - i)),
                   now() - make_interval(days => 7 * ($1 - i)),
                   $2
            FROM generate_series(1, $1::integer) AS i
            """,
            issues,
            subscribers,
        )
        await conn.execute(
            """
            INSERT INTO deliveries (kind, recipient, subscriber_id, issue_id, status, attempts,
                                    max_attempts, created_at, updated_at, sent_at, last_error)
            SELECT 'issue', s.email, s.id, i.id,
                   CASE WHEN hashtext(s.email) % 50 = 0 THEN 'failed' ELSE 'sent' END,
                   1, 5, i.published_at, i.published_at, i.published_at,
                   CASE WHEN hashtext(s.email) % 50 = 0 THEN 'mailbox full' END
            FROM newsletter_issues AS i, subscriptions AS s
            """
        )
        took["deliveries"] = time.perf_counter() - started
        await conn.execute(
            """
            INSERT INTO deliveries (kind, recipient, subscriber_id, status, attempts, max_attempts,
                                    created_at, updated_at, sent_at, message)
            SELECT 'confirmation', s.email, s.id, 'sent', 1, 5,
                   now() - make_interval(mins => g), now() - make_interval(mins => g),
                   now() - make_interval(mins => g), '{}'::jsonb
            FROM (SELECT id, email FROM subscriptions ORDER BY created_at LIMIT 1) AS s,
                 generate_series(1, $1::integer) AS g
            """,
            heavy,
        )
    finally:
        await conn.close()
    return took


async def sample(dsn: str) -> dict[str, Any]:
    """What the requests ask for: cursors deep in the list, search terms, the heavy one."""
    conn = await asyncpg.connect(dsn)
    try:
        total = await conn.fetchval("SELECT count(*) FROM subscriptions")
        deep = await conn.fetchrow(
            "SELECT created_at, id FROM subscriptions ORDER BY created_at DESC, id DESC"
            " OFFSET $1 LIMIT 1",
            total // 2,
        )
        heavy = await conn.fetchval("SELECT id FROM subscriptions ORDER BY created_at LIMIT 1")
        typical = await conn.fetchval(
            "SELECT id FROM subscriptions ORDER BY created_at DESC OFFSET $1 LIMIT 1", total // 3
        )
        picks = await conn.fetch("SELECT email FROM subscriptions ORDER BY random() LIMIT 200")
        oldest = await conn.fetchval(
            "SELECT id FROM newsletter_issues WHERE status = 'sent' ORDER BY created_at LIMIT 1"
        )
        draft = await conn.fetchval(
            "SELECT id FROM newsletter_issues WHERE title = $1 AND status = 'draft'", DRAFT_TITLE
        )
        if draft is None:  # a database loaded before the issue pages were measured
            draft = await conn.fetchval(
                "INSERT INTO newsletter_issues (id, title, markdown, html_content, text_content)"
                " VALUES (gen_random_uuid(), $1, 'Hello {{ name }}',"
                " '<p>Hello {{ name }}</p>', 'Hello {{ name }}') RETURNING id",
                DRAFT_TITLE,
            )
    finally:
        await conn.close()
    emails = [r["email"] for r in picks]
    return {
        "deep": f"{deep['created_at'].isoformat()}~{deep['id']}",
        "heavy": heavy,
        "typical": typical,
        "emails": emails,
        "issue": oldest,
        "draft": draft,
    }


async def first_event(client: httpx.AsyncClient, url: str) -> None:
    """Open an event stream, read up to its first ``progress`` event, close it."""
    async with client.stream("GET", url) as response:
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code}")
        async for line in response.aiter_lines():
            if line == "event: progress":
                return
    raise SystemExit(f"{url}: no progress event")


async def timed(
    client: httpx.AsyncClient, urls: list[str], rounds: int, *, stream: bool = False
) -> list[float]:
    async def fetch(url: str) -> None:
        if stream:
            await first_event(client, url)
            return
        response = await client.get(url)
        if response.status_code != 200:
            raise SystemExit(f"{url}: {response.status_code}")

    for url in [urls[n % len(urls)] for n in range(3)]:
        await fetch(url)
    out = []
    for n in range(rounds):
        url = urls[n % len(urls)]
        started = time.perf_counter()
        await fetch(url)
        out.append((time.perf_counter() - started) * 1000)
    return out


def next_link(html: str, pattern: re.Pattern[str] = NEXT_RECIPIENTS) -> list[str]:
    found = pattern.search(html)
    return [unescape(found.group(1)).split("#")[0]] if found else []


async def measure(
    dsn: str, rounds: int, picks: dict[str, Any], only: tuple[str, ...] = ()
) -> dict[str, list[float]]:
    from herald.composition.app import create_app

    settings = Settings(
        database_url=dsn,
        secret_key="s" * 48,
        base_url="http://herald.bench",
        data_dir=Path(tempfile.mkdtemp(prefix="herald-a1-")),
    )  # type: ignore[call-arg]
    db = await Database.open(dsn, settings.db, "herald-bench")
    passwords = Passwords(memory_kib=8 * 1024, time_cost=1, threads=1)
    try:
        await AuthService(db, settings, passwords).create_user("admin", PASSWORD)
    except Exception as exc:  # noqa: BLE001 - a reused database has the user already
        log(f"admin user not created ({exc.__class__.__name__}): reusing it")
    finally:
        passwords.close()
    app = create_app(settings, db=db)
    rng = random.Random(7)
    emails = picks["emails"]
    rare = [e.split("@")[0][len(e.split("@")[0]) // 3 :][:8] for e in emails]
    prefixes = [e[:5] for e in emails]
    results: dict[str, list[float]] = {}
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://herald.bench") as c:
                page = await c.get("/login")
                token = CSRF.search(page.text)
                assert token
                login = await c.post(
                    "/login",
                    data={"username": "admin", "password": PASSWORD, "csrf_token": token.group(1)},
                )
                assert login.headers.get("location") == "/admin/dashboard", login.text
                first = await c.get("/admin/subscribers")
                page2 = OLDER.search(first.text)
                cases: dict[str, list[str]] = {
                    "list, first page": ["/admin/subscribers"],
                    "list, page 2 (keyset link)": [unescape(page2.group(1))] if page2 else [],
                    "list, middle of the list (keyset)": [
                        "/admin/subscribers?" + httpx.QueryParams(after=picks["deep"]).__str__()
                    ],
                    "list, oldest first": ["/admin/subscribers?sort=oldest"],
                    "tab: confirmed": ["/admin/subscribers?status=confirmed"],
                    "tab: pending": ["/admin/subscribers?status=pending_confirmation"],
                    "tab: unsubscribed": ["/admin/subscribers?status=unsubscribed"],
                    "search, starts with (5 chars)": [
                        "/admin/subscribers?" + str(httpx.QueryParams(q=p, match="prefix"))
                        for p in prefixes
                    ],
                    "search, contains (rare, 8 chars)": [
                        "/admin/subscribers?" + str(httpx.QueryParams(q=t)) for t in rare
                    ],
                    "search, contains (common: a domain)": [
                        "/admin/subscribers?" + str(httpx.QueryParams(q=d)) for d in DOMAINS
                    ],
                    "search, contains + tab": [
                        "/admin/subscribers?"
                        + str(httpx.QueryParams(q=t, status="pending_confirmation"))
                        for t in rare
                    ],
                    "detail + timeline, typical subscriber": [
                        f"/admin/subscribers/{picks['typical']}"
                    ],
                    "detail + timeline, subscriber with many deliveries": [
                        f"/admin/subscribers/{picks['heavy']}"
                    ],
                    "dashboard, 30 days": ["/admin/dashboard"],
                    "dashboard, 365 days": ["/admin/dashboard?days=365"],
                    "dashboard figures (JSON, live refetch)": ["/admin/dashboard/figures"],
                    **(await issue_cases(c, picks)),
                }
                for name, urls in cases.items():
                    if not urls or (only and not name.startswith(only)):
                        continue
                    rng.shuffle(urls)
                    results[name] = await timed(c, urls, rounds, stream=name.startswith(STREAM))
                    log(
                        f"{name}: p50 {percentile(results[name], 50):.1f} ms, "
                        f"p95 {percentile(results[name], 95):.1f} ms"
                    )
    finally:
        await db.close()
    return results


STREAM = "issue: first progress event"


async def issue_cases(c: httpx.AsyncClient, picks: dict[str, Any]) -> dict[str, list[str]]:
    """The issue pages: the oldest sent issue (every subscriber of its day got it) with each
    recipient filter the page offers and the next page of each, its live progress stream,
    and the draft's publish confirmation."""
    issue = f"/admin/issues/{picks['issue']}"
    draft = f"/admin/issues/{picks['draft']}"
    cases: dict[str, list[str]] = {
        "issues list": ["/admin/issues"],
        "issue: page, all recipients": [issue],
        "issue: recipients, next page (keyset)": next_link((await c.get(issue)).text),
    }
    for status in ("sent", "failed", "queued", "sending", "suppressed"):
        url = f"{issue}?status={status}"
        cases[f"issue: recipients {status}"] = [url]
        older = next_link((await c.get(url)).text)
        if older:
            cases[f"issue: recipients {status}, next page"] = older
    cases[STREAM] = [f"{issue}/events"]
    cases["draft: page"] = [draft]
    cases["draft: editor"] = [f"{draft}/edit"]
    cases["draft: publish confirmation (recipient count)"] = [f"{draft}/publish"]
    return cases


def report(
    args: argparse.Namespace, results: dict[str, list[float]], took: dict[str, float]
) -> bool:
    ok = all(percentile(v, 95) <= TARGET_MS for v in results.values())
    lines = [
        "### A1 — Admin subscriber pages, dashboard and issue pages at scale",
        "",
        f"`{command_line()}`",
        "",
        f"{args.subscribers:,} subscribers, {args.deliveries:,} issue deliveries (+{args.heavy:,} "
        "for one subscriber; the issue pages are those of the oldest issue, sent to "
        f"{args.subscribers:,}, and of a draft); embedded Postgres with "
        + ", ".join(f"{k}={v}" for k, v in PG_SETTINGS.items())
        + f"; the app in-process over ASGI (server time), {args.requests} requests per page "
        f"after 3 warm-ups. {machine()}, {today()}.",
        "",
        "| Page | p50 ms | p95 ms | max ms | target p95 ≤ 100 ms |",
        "|---|---:|---:|---:|---|",
    ]
    for name, values in results.items():
        p95 = percentile(values, 95)
        lines.append(
            f"| {name} | {percentile(values, 50):.1f} | {p95:.1f} | {max(values):.1f} "
            f"| {verdict(p95 <= TARGET_MS)} |"
        )
    if took:
        lines += [
            "",
            "Load and index build times: "
            + ", ".join(f"{k} {v:.0f} s" for k, v in took.items())
            + ".",
        ]
    write_section("A1", "\n".join(lines), {"results": results, "load_seconds": took})
    return ok


async def loaded(admin_dsn: str, dsn: str, name: str) -> bool:
    """Whether a previous run (``--cluster``) left this database fully loaded and indexed."""
    admin = await asyncpg.connect(admin_dsn)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            return False
    finally:
        await admin.close()
    conn = await asyncpg.connect(dsn)
    try:
        return bool(
            await conn.fetchval(
                "SELECT coalesce(bool_and(i.indisvalid), false) FROM pg_index AS i"
                " WHERE i.indexrelid = to_regclass('subscriptions_search')"
            )
        )
    finally:
        await conn.close()


async def revision(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return str(await conn.fetchval("SELECT version_num FROM alembic_version"))
    finally:
        await conn.close()


async def a1_database(
    server: Any, subscribers: int, deliveries: int, heavy: int
) -> tuple[str, dict[str, float]]:
    """A1's database on ``server``, loaded (or kept from a ``--cluster`` run) and migrated
    to head; with the seconds each loading step took (nothing for a kept database that
    was already at head). Shared with ``bench/api_lists.py``."""
    admin_dsn = server.dsn("postgres")
    name = f"herald_a1_{subscribers}_{deliveries}_{heavy}"
    dsn = server.dsn(name)
    exists = await loaded(admin_dsn, dsn, name)
    took: dict[str, float] = {}
    if not exists:  # absent, or left half-loaded by an interrupted run
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
            await admin.execute(f"CREATE DATABASE {quote_ident(name)}")
        finally:
            await admin.close()
        await migrate.upgrade_async(dsn, "0009")
        took = await load(dsn, subscribers, deliveries, heavy)
        log(f"loaded: {took}")
        started = time.perf_counter()
        await migrate.upgrade_async(dsn, "head")
        took[f"migrations 0010-{await revision(dsn)}"] = time.perf_counter() - started
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("VACUUM ANALYZE")
        finally:
            await conn.close()
        log(f"indexes: {took}")
    else:  # a kept database from an older run: the migrations it lacks, timed
        was = await revision(dsn)
        started = time.perf_counter()
        await migrate.upgrade_async(dsn, "head")
        now = await revision(dsn)
        if now != was:
            took[f"migrations after {was} up to {now} (kept database)"] = (
                time.perf_counter() - started
            )
    return dsn, took


async def run(args: argparse.Namespace) -> int:
    with embedded_postgres(PG_SETTINGS, keep=args.cluster) as server:
        dsn, took = await a1_database(server, args.subscribers, args.deliveries, args.heavy)
        picks = await sample(dsn)
        only = tuple(p for p in args.only.split(",") if p) if args.only else ()
        results = await measure(dsn, args.requests, picks, only)
    ok = report(args, results, took)
    return 0 if ok or args.no_fail else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--deliveries", type=int, default=10_000_000)
    parser.add_argument("--heavy", type=int, default=2_000, help="deliveries of one subscriber")
    parser.add_argument("--requests", type=int, default=40, help="per page (at least 20)")
    parser.add_argument("--cluster", type=Path, default=None, help="keep the cluster here")
    parser.add_argument("--no-fail", action="store_true", help="exit 0 on a missed target")
    parser.add_argument(
        "--only", default="", help="the pages whose names start so (comma-separated), e.g. issue"
    )
    args = parser.parse_args()
    if args.requests < 20:
        parser.error("--requests: at least 20")
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
