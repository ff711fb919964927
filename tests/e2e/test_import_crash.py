"""A worker killed (SIGKILL) in the middle of an opt-in import of 20,000 rows: another
worker takes the job over once its lease runs out and finishes it from its last
checkpoint. Nothing is lost and nothing is done twice: 20,000 subscribers, each with one
membership, one confirmation token and one confirmation email; the counts are exact.

Each step writes 5,000 rows, their emails and its checkpoint in one transaction, so the
kill loses at most the step in flight. A test-only trigger makes every step take 0.5 s
longer, so the kill lands while the import is under way.
"""

from __future__ import annotations

import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.imports.domain import Mode
from herald.imports.service import ImportService
from tests.support.crashed_jobs import kill_midway_then_finish, slow_steps, worker_env
from tests.support.processes import herald_process, wait_exit
from tests.support.queue import wait_until

ROWS = 20_000

SLOW_STEPS = slow_steps(after="INSERT ON subscriptions", seconds=0.5)


async def csv_file() -> AsyncIterator[bytes]:
    yield b"email,name,city\r\n"
    for start in range(0, ROWS, 1000):
        yield "".join(
            f"reader{i}@example.com,Reader {i},City {i % 7}\r\n" for i in range(start, start + 1000)
        ).encode()


@pytest.mark.slow
async def test_an_import_killed_midway_is_finished_by_another_worker_exactly_once(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    async with db.connection() as conn:
        await conn.execute(SLOW_STEPS)
    service = ImportService(db, settings)
    view = await service.upload("readers.csv", csv_file(), created_by=None)
    view = await service.start(view.job.id, roles=None, list_slugs=["default"], mode=Mode.OPT_IN)
    job_id = view.job.id
    env = worker_env(database_url, tmp_path, lease_seconds=5)
    await kill_midway_then_finish(db, job_id, env, tmp_path, midway=5000, total=ROWS)

    done = await service.get(job_id)
    counts = done.record.counts
    assert (counts.imported, counts.updated, counts.skipped, counts.rejected) == (ROWS, 0, 0, 0)
    assert (done.job.done, done.job.skipped) == (ROWS, 0), "every row once, none twice"
    async with db.connection() as conn:
        figures = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM subscriptions) AS subscribers,"
            " (SELECT count(*) FROM list_memberships) AS memberships,"
            " (SELECT count(*) FROM subscription_tokens) AS tokens,"
            " (SELECT count(*) FROM deliveries WHERE kind = 'confirmation') AS emails,"
            " (SELECT count(DISTINCT recipient) FROM deliveries"
            "   WHERE kind = 'confirmation') AS recipients"
        )
    assert dict(figures) == {
        "subscribers": ROWS,
        "memberships": ROWS,
        "tokens": ROWS,
        "emails": ROWS,
        "recipients": ROWS,
    }


@pytest.mark.slow
async def test_the_cli_imports_beside_a_worker_and_a_killed_cli_leaves_the_rest_to_it(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    """``herald subscribers import`` with a worker running: they share the job (whichever
    holds the lease runs a step); the CLI SIGKILLed mid-way, the worker finishes the import
    exactly once. A second CLI run of the same file then only updates."""
    async with db.connection() as conn:
        await conn.execute(SLOW_STEPS)
    source = tmp_path / "readers.csv"
    with source.open("wb") as out:
        async for piece in csv_file():
            out.write(piece)
    env = worker_env(database_url, tmp_path, lease_seconds=5)
    args = ("subscribers", "import", str(source), "--list", "default", "--mode", "confirmed")
    async with herald_process("worker", env=env, log_path=tmp_path / "worker.log") as worker:
        async with herald_process(*args, env=env, log_path=tmp_path / "cli.log") as cli:

            async def started() -> bool:
                async with db.connection() as conn:
                    done = await conn.fetchval(
                        "SELECT done FROM jobs WHERE kind = 'subscribers.import'"
                    )
                return bool(done) and done >= 5000

            await wait_until(started, timeout=120, interval=0.05)
            cli.send_signal(signal.SIGKILL)
            assert await wait_exit(cli, 10) == -signal.SIGKILL

        async def finished() -> bool:
            async with db.connection() as conn:
                status = await conn.fetchval(
                    "SELECT status FROM jobs WHERE kind = 'subscribers.import'"
                )
            return status == "done"

        await wait_until(finished, timeout=180, interval=0.1)
        async with herald_process(*args, env=env, log_path=tmp_path / "again.log") as again:
            assert await wait_exit(again, 120) == 0
        worker.send_signal(signal.SIGTERM)
        assert await wait_exit(worker, 30) == 0
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT i.imported, i.updated, i.skipped, i.rejected FROM imports AS i"
            " JOIN jobs AS j ON j.id = i.job_id ORDER BY j.created_at"
        )
        subscribers = await conn.fetchval("SELECT count(*) FROM subscriptions")
    assert [tuple(r) for r in rows] == [(ROWS, 0, 0, 0), (0, ROWS, 0, 0)]
    assert subscribers == ROWS
    summary = (tmp_path / "again.log").read_text(encoding="utf-8")
    assert f"0 imported, {ROWS:,} updated, 0 skipped (suppressed), 0 rejected" in summary
