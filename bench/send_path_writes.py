"""What the issue pages' schema (migrations 0013-0015) costs the send path's writes.

On a fresh embedded Postgres at head, three configurations take turns, each on fresh rows
(``TRUNCATE``, then 200,000 deliveries of one issue): the schema before 0013 (the index
``deliveries_issue_status (issue_id, status)``, no counting triggers), the new index
``(issue_id, status, id)`` in place of the old one, and the new index with 0014's
``deliveries_count_*`` triggers. Timed statements: a fan-out chunk (an ``INSERT`` of 50,000
deliveries), and the workers' ``claim`` and ``mark_sent`` of 500 rows (the real queries
of ``delivery/queries.sql``), until the issue is sent. Medians per configuration::

    .venv/bin/python bench/send_path_writes.py --rounds 4
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

import asyncpg

from _harness import embedded_postgres, log
from herald.core import migrate, sql

DELIVERY = sql.load("herald.delivery")
ROWS = 200_000
CHUNK = 50_000
BATCH = 500
CONFIGS = {
    "before 0013": (False, False),
    "new index in place of the old": (True, False),
    "new index + 0014's triggers": (True, True),
}


async def configure(conn: asyncpg.Connection, new_index: bool, triggers: bool) -> None:
    await conn.execute("DROP INDEX IF EXISTS deliveries_issue_status_id")
    await conn.execute("DROP INDEX IF EXISTS deliveries_issue_status")
    if new_index:
        await conn.execute(
            "CREATE INDEX deliveries_issue_status_id ON deliveries (issue_id, status, id)"
            " WHERE issue_id IS NOT NULL"
        )
    else:
        await conn.execute(
            "CREATE INDEX deliveries_issue_status ON deliveries (issue_id, status)"
            " WHERE issue_id IS NOT NULL"
        )
    for trigger in ("deliveries_count_inserts", "deliveries_count_updates"):
        action = "ENABLE" if triggers else "DISABLE"
        await conn.execute(f"ALTER TABLE deliveries {action} TRIGGER {trigger}")


async def one_round(conn: asyncpg.Connection) -> dict[str, float]:
    """Milliseconds: the mean chunk insert, the median claim and mark_sent."""
    await conn.execute("TRUNCATE deliveries")
    await conn.execute("VACUUM deliveries")
    issue_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO newsletter_issues (id, title, html_content, text_content, status)"
        " VALUES ($1, 'writes', 'x', 'x', 'publishing')",
        issue_id,
    )
    inserts = []
    for _ in range(ROWS // CHUNK):
        started = time.perf_counter()
        await conn.execute(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, issue_id, max_attempts)"
            " SELECT 'issue', 'r' || g || '@example.org', gen_random_uuid(), $1, 5"
            " FROM generate_series(1, $2::integer) AS g",
            issue_id,
            CHUNK,
        )
        inserts.append((time.perf_counter() - started) * 1000)
    claims, marks = [], []
    token = uuid.uuid4()
    while True:
        started = time.perf_counter()
        tracing = False
        rows = await conn.fetch(DELIVERY["claim"], BATCH, 60.0, token, "bench", tracing)
        if not rows:
            break
        claims.append((time.perf_counter() - started) * 1000)
        ids = [row["id"] for row in rows]
        started = time.perf_counter()
        await conn.execute(DELIVERY["mark_sent"], ids, ["id"] * len(ids), token)
        marks.append((time.perf_counter() - started) * 1000)
    return {
        f"insert of {CHUNK:,}": statistics.mean(inserts),
        f"claim of {BATCH}": statistics.median(claims),
        f"mark_sent of {BATCH}": statistics.median(marks),
    }


async def run(rounds: int) -> None:
    with embedded_postgres({"shared_buffers": "512MB"}) as server:
        admin = await asyncpg.connect(server.dsn("postgres"))
        try:
            await admin.execute("CREATE DATABASE send_path_writes")
        finally:
            await admin.close()
        dsn = server.dsn("send_path_writes")
        await migrate.upgrade_async(dsn, "head")
        conn = await asyncpg.connect(dsn)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in CONFIGS}
        try:
            for n in range(rounds):
                for name, (new_index, triggers) in CONFIGS.items():
                    await configure(conn, new_index, triggers)
                    results[name].append(await one_round(conn))
                    log(f"round {n + 1}, {name}: {results[name][-1]}")
        finally:
            await conn.close()
    for name, runs in results.items():
        medians = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
        print(f"{name}: " + ", ".join(f"{k} {v:.1f} ms" for k, v in medians.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=4)
    asyncio.run(run(parser.parse_args().rounds))


if __name__ == "__main__":
    main()
