"""SEG1 — segment filters at 1M subscribers: what a count costs, and whether a GIN index
on ``subscriptions.attributes`` helps equality filters.

Loads ``--subscribers`` rows (80 % confirmed; attributes ``city`` from 200 cities with a
skewed spread, ``age`` 18-90 as a number, ``vip`` true for 5 %, ``plan`` for half of them;
every one in the default list) into a throw-away cluster migrated by Herald, then runs
``EXPLAIN (ANALYZE, BUFFERS)`` of ``count_members`` (segments/queries.sql) with the
condition ``compile_filter`` makes, for each case, without migration 0023's index
(dropped before loading) and after building it again
(``CREATE INDEX … USING gin (attributes jsonb_path_ops)``). Prints the plan's top node and
the execution time (median of ``--runs``); then what the index costs writes: the time to
insert ``--write-rows`` more subscribers (one statement) with the index and without it::

    .venv/bin/python bench/segments.py                      # 1M
    .venv/bin/python bench/segments.py --subscribers 50000  # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

import asyncpg

from _harness import embedded_postgres, explain, log, machine, migrated_database
from herald.segments.compiler import compile_filter, with_condition
from herald.segments.domain import parse_filter
from herald.segments.repository import Q

CASES: dict[str, dict[str, Any]] = {
    "city eq (common, ~17 %)": {"attribute": "city", "op": "eq", "value": "city0"},
    "city eq (rare, ~0.2 %)": {"attribute": "city", "op": "eq", "value": "city150"},
    "city eq + confirmed + default list": {
        "all": [
            {"attribute": "city", "op": "eq", "value": "city150"},
            {"status": ["confirmed"]},
            {"list": "default"},
        ]
    },
    "vip eq true (5 %)": {"attribute": "vip", "op": "eq", "type": "boolean", "value": True},
    "age gt 80 (number)": {"attribute": "age", "op": "gt", "type": "number", "value": 80},
    "plan exists": {"attribute": "plan", "op": "exists"},
    "signed up within 30 days": {"created_at": {"within_days": 30}},
}
LOAD = """
INSERT INTO subscriptions (id, email, name, status, created_at, attributes)
SELECT gen_random_uuid(), 'reader' || n || '@example.org', 'Reader ' || n,
       CASE WHEN n % 10 < 8 THEN 'confirmed' WHEN n % 10 = 8 THEN 'pending_confirmation'
            ELSE 'unsubscribed' END,
       now() - make_interval(secs => (n % 63072000)),
       jsonb_strip_nulls(jsonb_build_object(
           'city', 'city' || floor(200 * power(random(), 3))::int,
           'age', 18 + (n % 73),
           'vip', (n % 20 = 0),
           'plan', CASE WHEN n % 2 = 0 THEN 'pro' END))
FROM generate_series($1::int, $2::int) AS n
"""


async def measure(conn: asyncpg.Connection, runs: int) -> dict[str, tuple[str, float]]:
    out = {}
    for name, raw in CASES.items():
        condition, params = compile_filter(parse_filter(raw), alias="s", first_param=1)
        statement = with_condition(Q["count_members"], condition)
        out[name] = await explain(conn, statement, params, runs)
    return out


async def timed_load(conn: asyncpg.Connection, first: int, rows: int) -> float:
    start = time.perf_counter()
    await conn.execute(LOAD, first, first + rows - 1)
    return time.perf_counter() - start


async def main(args: argparse.Namespace) -> None:
    log(f"SEG1 on {machine()}, {args.subscribers:,} subscribers")
    with embedded_postgres({"shared_buffers": "512MB", "work_mem": "16MB"}) as server:
        dsn = server.dsn("seg1")
        await migrated_database(server.dsn("postgres"), dsn, "seg1")
        conn = await asyncpg.connect(dsn)
        try:
            # 0023 built the index at head: measure without it first, then build it again.
            await conn.execute("DROP INDEX subscriptions_attributes")
            step = 200_000
            for start in range(1, args.subscribers + 1, step):
                await conn.execute(LOAD, start, min(start + step - 1, args.subscribers))
            await conn.execute("VACUUM ANALYZE subscriptions")
            await conn.execute("VACUUM ANALYZE list_memberships")
            before = await measure(conn, args.runs)
            await conn.execute(
                "CREATE INDEX subscriptions_attributes ON subscriptions"
                " USING gin (attributes jsonb_path_ops)"
            )
            await conn.execute("ANALYZE subscriptions")
            after = await measure(conn, args.runs)
            size = await conn.fetchval(
                "SELECT pg_size_pretty(pg_relation_size('subscriptions_attributes'))"
            )
            first = args.subscribers + 1
            with_index = await timed_load(conn, first, args.write_rows)
            await conn.execute("DROP INDEX subscriptions_attributes")
            without = await timed_load(conn, first + args.write_rows, args.write_rows)
        finally:
            await conn.close()
    log(f"GIN index size: {size}")
    log(
        f"inserting {args.write_rows:,} subscribers with attributes: {without:.2f} s without "
        f"the index, {with_index:.2f} s with it"
    )
    for name in CASES:
        (p0, t0), (p1, t1) = before[name], after[name]
        log(f"{name:40} {t0:9.1f} ms {p0:28} | with GIN {t1:9.1f} ms {p1}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--write-rows", type=int, default=100_000)
    asyncio.run(main(parser.parse_args()))
