"""LST1 — the lists' statements at 1M memberships: member counts (counted vs kept by 0019's
triggers) and the members' keyset pages of the admin and the API.

Loads ``--subscribers`` rows (85 % confirmed, 10 % pending, 5 % unsubscribed) into a
throw-away cluster migrated by Herald: each joins the default list through 0018's mirror
trigger, in steps of 200,000; 50 more lists. Then ``EXPLAIN (ANALYZE, BUFFERS)`` of each
case, median of ``--runs``: counting the list's members by status with ``count(*)`` (what
``list_member_counts`` replaces), the same with a ``(list_id, status)`` index, and the
named statements of ``lists/queries.sql`` (every list with its counts, the API's page of
lists, pages of members at the start and half-way, by status)::

    .venv/bin/python bench/lists.py                      # 1M
    .venv/bin/python bench/lists.py --subscribers 50000  # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import asyncpg

from _harness import embedded_postgres, explain, log, machine, migrated_database
from herald.lists.repository import Q

LOAD = """
INSERT INTO subscriptions (id, email, name, status, confirmed_at)
SELECT gen_random_uuid(), 'reader' || n || '@example.org', 'Reader ' || n,
       CASE WHEN n % 20 < 17 THEN 'confirmed' WHEN n % 20 < 19 THEN 'pending_confirmation'
            ELSE 'unsubscribed' END,
       now()
FROM generate_series($1::int, $2::int) AS n
"""
COUNT = "SELECT status, count(*) FROM list_memberships WHERE list_id = $1 GROUP BY status"
NIL = uuid.UUID(int=0)
EPOCH = datetime(1, 1, 1, tzinfo=UTC)


async def main(args: argparse.Namespace) -> None:
    log(f"LST1 on {machine()}, {args.subscribers:,} subscribers")
    with embedded_postgres({"shared_buffers": "512MB", "work_mem": "16MB"}) as server:
        dsn = server.dsn("lst1")
        await migrated_database(server.dsn("postgres"), dsn, "lst1")
        conn = await asyncpg.connect(dsn)
        try:
            step = 200_000
            for start in range(1, args.subscribers + 1, step):
                await conn.execute(LOAD, start, min(start + step - 1, args.subscribers))
            await conn.execute(
                "INSERT INTO lists (slug, name) SELECT 'list-' || i, 'List ' || i"
                " FROM generate_series(1, 50) AS i"
            )
            await conn.execute("VACUUM ANALYZE")
            default = await conn.fetchval("SELECT id FROM lists WHERE slug = 'default'")
            middle = await conn.fetchval(
                "SELECT subscriber_id FROM list_memberships WHERE list_id = $1"
                " ORDER BY subscriber_id OFFSET $2 LIMIT 1",
                default,
                args.subscribers // 2,
            )
            cases: list[tuple[str, str, tuple[Any, ...]]] = [
                ("count(*) by status, the whole list", COUNT, (default,)),
                ("every list with its counts (all_lists)", Q["all_lists"], (1000,)),
                ("the API's page of lists (list_page)", Q["list_page"], (EPOCH, NIL, 51)),
                ("members, first page", Q["members"], (default, NIL, 51)),
                ("members, half-way", Q["members"], (default, middle, 51)),
                (
                    "members confirmed, half-way",
                    Q["members_by_status"],
                    (default, "confirmed", middle, 51),
                ),
                (
                    "members pending, first page",
                    Q["members_by_status"],
                    (default, "pending_confirmation", NIL, 51),
                ),
                (
                    "members unsubscribed, half-way",
                    Q["members_by_status"],
                    (default, "unsubscribed", middle, 51),
                ),
            ]
            results = [(name, *await explain(conn, q, a, args.runs)) for name, q, a in cases]
            await conn.execute("CREATE INDEX lst1_status ON list_memberships (list_id, status)")
            await conn.execute("VACUUM ANALYZE list_memberships")
            results.append(
                (
                    "count(*) by status, with (list_id, status)",
                    *await explain(conn, COUNT, (default,), args.runs),
                )
            )
            counted = dict(await conn.fetch(COUNT, default))
            kept = dict(
                await conn.fetch(
                    "SELECT status, sum(n)::bigint FROM list_member_counts WHERE list_id = $1"
                    " GROUP BY status",
                    default,
                )
            )
        finally:
            await conn.close()
    log(f"counts kept by the triggers equal count(*): {counted == kept} ({kept})")
    for name, top, ms in results:
        log(f"{name:48} {ms:9.2f} ms  {top}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
