"""SUP1 — the suppression list at 1M rows: what the admin page and the API's list cost.

Loads ``--rows`` suppressions (a tenth erased, the rest spread over four reasons, one a
second back in time) into a throw-away cluster migrated by Herald, through the triggers
that keep ``suppression_counts`` and the trigram index of kept addresses, then times what
a page view runs (``suppressions.service``'s choice of statement, median of ``--runs``):
the counts by reason, a first page, a reason, a whole address (by its key), a common, a
rare and an absent text, and a two-character one::

    .venv/bin/python bench/suppressions.py                # 1M
    .venv/bin/python bench/suppressions.py --rows 50000   # smoke
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

import asyncpg

from _harness import embedded_postgres, log, machine
from herald.core import migrate
from herald.suppressions import repository
from herald.suppressions.domain import Cursor, Filter
from herald.suppressions.service import PAGE_SIZE, rows_for

LOAD = """
INSERT INTO suppressions (address_key, email, reason, source, created_at)
SELECT herald_address_key(e), CASE WHEN n % 10 = 0 THEN NULL ELSE e END,
       (ARRAY['unsubscribed', 'erased', 'hard_bounce', 'complaint', 'manual'])[n % 5 + 1],
       'bench', now() - make_interval(secs => n)
FROM (SELECT n, 'reader' || n || '@example.com' AS e
      FROM generate_series($1::int, $2::int) AS n) AS x
"""
CASES = {
    "first page": Filter(),
    "reason = manual": Filter.parse(reason="manual"),
    "a whole address (by key)": Filter.parse(q="reader77777@example.com"),
    "a common text ('reader1')": Filter.parse(q="reader1"),
    "a rare text ('er99999@')": Filter.parse(q="er99999@"),
    "an absent text ('zzz')": Filter.parse(q="zzz"),
    "two characters, absent ('zq')": Filter.parse(q="zq"),
}


async def main(args: argparse.Namespace) -> None:
    log(f"SUP1 on {machine()}, {args.rows:,} suppressions")
    with embedded_postgres({"shared_buffers": "512MB"}) as server:
        dsn = server.dsn("postgres")
        await migrate.upgrade_async(dsn, "head")
        conn = await asyncpg.connect(dsn)
        try:
            started = time.perf_counter()
            for low in range(1, args.rows + 1, 100_000):
                await conn.execute(LOAD, low, min(low + 99_999, args.rows))
            log(f"loaded in {time.perf_counter() - started:.1f} s")
            await conn.execute("VACUUM ANALYZE suppressions")
            timings = {"counts by reason": await _median(args.runs, repository.counts, conn)}
            for name, where in CASES.items():
                timings[name] = await _median(
                    args.runs, rows_for, conn, where, Cursor.start(), PAGE_SIZE + 1
                )
        finally:
            await conn.close()
    for name, ms in timings.items():
        print(f"{name:32} {ms:9.2f} ms")


async def _median(runs: int, call: object, *args: object) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await call(*args)  # type: ignore[operator]
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
