"""CSV imports (herald.imports): both modes, upsert by normalised address, suppressed and
unsubscribed addresses skipped, rejected rows in the error report, opt-in emails queued
once, and a job resumed from its checkpoint after a step that never committed."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.imports import job as import_job
from herald.imports.domain import Mode
from herald.imports.job import ImportJob
from herald.imports.service import ImportService, ImportView
from herald.jobs import repository as jobs
from herald.jobs.domain import JobStatus
from herald.jobs.runner import JobRunner, run_now


async def pieces(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


async def run_import(
    db: Database,
    settings: Settings,
    data: bytes,
    *,
    mode: Mode = Mode.CONFIRMED,
    lists: tuple[str, ...] = ("default",),
    roles: list[str] | None = None,
) -> ImportView:
    service = ImportService(db, settings)
    view = await service.upload("people.csv", pieces(data), created_by=None)
    view = await service.start(view.job.id, roles=roles, list_slugs=list(lists), mode=mode)
    done = await run_now(db, view.job, ImportJob(settings), budget_seconds=60, lease_seconds=30)
    assert done.status is JobStatus.DONE, done.message
    return await service.get(view.job.id)


async def subscribers(db: Database) -> dict[str, dict[str, object]]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT s.email, s.name, s.status, s.attributes::text AS attributes,"
            " (SELECT array_agg(l.slug || ':' || m.status ORDER BY l.slug)"
            "  FROM list_memberships m JOIN lists l ON l.id = m.list_id"
            "  WHERE m.subscriber_id = s.id) AS lists"
            " FROM subscriptions s"
        )
    return {
        r["email"]: {
            "name": r["name"],
            "status": r["status"],
            "attributes": json.loads(r["attributes"]),
            "lists": list(r["lists"] or []),
        }
        for r in rows
    }


async def confirmations(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT recipient, count(*) AS n FROM deliveries WHERE kind = 'confirmation'"
            " GROUP BY recipient"
        )
    return {r["recipient"]: r["n"] for r in rows}


async def add_list(db: Database, slug: str) -> None:
    async with db.connection() as conn:
        await conn.execute("INSERT INTO lists (slug, name) VALUES ($1, $1)", slug)


async def test_confirmed_mode_adds_confirmed_members_without_email(
    db: Database, settings: Settings
) -> None:
    data = (
        "\ufeffemail,name,city,plan\r\nann@example.com,Ann,Paris,gold\r\nbob@example.com,,Oslo,\r\n"
    )
    view = await run_import(db, settings, data.encode())
    counts = view.record.counts
    assert (counts.imported, counts.updated, counts.skipped, counts.rejected) == (2, 0, 0, 0)
    found = await subscribers(db)
    assert found["ann@example.com"] == {
        "name": "Ann",
        "status": "confirmed",
        "attributes": {"city": "Paris", "plan": "gold"},
        "lists": ["default:confirmed"],
    }
    assert found["bob@example.com"]["attributes"] == {"city": "Oslo"}
    assert await confirmations(db) == {}
    assert "2 imported" in (view.job.message or "")


async def test_opt_in_mode_queues_one_confirmation_per_new_member(
    db: Database, settings: Settings
) -> None:
    await add_list(db, "weekly")
    data = b"email,name\nann@example.com,Ann\nbob@example.com,Bob\n"
    view = await run_import(db, settings, data, mode=Mode.OPT_IN, lists=("weekly",))
    assert view.record.counts.imported == 2
    found = await subscribers(db)
    assert found["ann@example.com"]["status"] == "pending_confirmation"
    assert found["ann@example.com"]["lists"] == ["weekly:pending_confirmation"]
    assert await confirmations(db) == {"ann@example.com": 1, "bob@example.com": 1}
    # Imported again: known members get no second email.
    again = await run_import(db, settings, data, mode=Mode.OPT_IN, lists=("weekly",))
    assert (again.record.counts.imported, again.record.counts.updated) == (0, 2)
    assert await confirmations(db) == {"ann@example.com": 1, "bob@example.com": 1}
    async with db.connection() as conn:
        tokens = await conn.fetchval("SELECT count(*) FROM subscription_tokens")
    assert tokens == 2


async def test_upsert_merges_attributes_and_never_downgrades(
    db: Database, settings: Settings
) -> None:
    await run_import(db, settings, b"email,name,city\nAnn@Example.com,Ann,Paris\n")
    view = await run_import(
        db,
        settings,
        b"email,name,plan\nann@EXAMPLE.com,Annie,gold\n",
        mode=Mode.OPT_IN,
    )
    assert (view.record.counts.imported, view.record.counts.updated) == (0, 1)
    found = await subscribers(db)
    assert list(found) == ["Ann@example.com"]
    assert found["Ann@example.com"]["name"] == "Annie"
    assert found["Ann@example.com"]["status"] == "confirmed"
    assert found["Ann@example.com"]["attributes"] == {"city": "Paris", "plan": "gold"}
    assert found["Ann@example.com"]["lists"] == ["default:confirmed"]
    assert await confirmations(db) == {}


def wide_csv(prefix: str, rows: list[str], columns: int = 10) -> bytes:
    """Rows of ``columns`` attribute columns of 1,000 characters each: ~10 KiB a row."""
    header = ",".join(["email", *(f"{prefix}{i}" for i in range(columns))])
    lines = [",".join([email, *(["x" * 1000] * columns)]) for email in rows]
    return ("\n".join([header, *lines]) + "\n").encode()


async def test_attributes_merged_past_the_limit_are_refused_not_grown(
    db: Database, settings: Settings
) -> None:
    """Each import's row is under 16 KiB, but merged with what an earlier import left
    (or with an earlier row of the same address in the file) it would pass the limit the
    API holds attributes to: that row is rejected and the subscriber keeps what it had."""
    first = await run_import(db, settings, wide_csv("a", ["wide@example.com", "other@example.com"]))
    assert first.record.counts.imported == 2
    before = (await subscribers(db))["wide@example.com"]["attributes"]
    data = wide_csv("b", ["wide@example.com", "new@example.com"])
    view = await run_import(db, settings, data)
    counts = view.record.counts
    assert (counts.imported, counts.updated, counts.rejected) == (1, 0, 1)
    errors = await ImportService(db, settings).errors(view.job.id)
    assert [(e.line, e.email) for e in errors] == [(2, "wide@example.com")]
    assert "over 16 KiB" in errors[0].error
    assert (await subscribers(db))["wide@example.com"]["attributes"] == before

    # The same address twice in one file: its second row (other columns filled) would
    # take it past the limit.
    header = ",".join(["email", *(f"c{i}" for i in range(20))])
    full, empty = ["x" * 1000] * 10, [""] * 10
    twice = "\n".join(
        [
            header,
            ",".join(["twice@example.com", *full, *empty]),
            ",".join(["TWICE@example.com", *empty, *full]),
        ]
    )
    view = await run_import(db, settings, twice.encode() + b"\n")
    counts = view.record.counts
    assert (counts.imported, counts.rejected) == (1, 1)
    errors = await ImportService(db, settings).errors(view.job.id)
    assert [(e.line, e.email) for e in errors] == [(3, "TWICE@example.com")]
    kept = (await subscribers(db))["twice@example.com"]["attributes"]
    assert sorted(kept) == [f"c{i}" for i in range(10)]


async def test_confirmed_mode_confirms_a_pending_address(db: Database, settings: Settings) -> None:
    await run_import(db, settings, b"email\nann@example.com\n", mode=Mode.OPT_IN)
    view = await run_import(db, settings, b"email\nann@example.com\n", mode=Mode.CONFIRMED)
    assert view.record.counts.updated == 1
    found = await subscribers(db)
    assert found["ann@example.com"]["status"] == "confirmed"
    assert found["ann@example.com"]["lists"] == ["default:confirmed"]


async def test_suppressed_and_unsubscribed_addresses_are_skipped(
    db: Database, settings: Settings
) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO suppressions (address_key, email, reason)"
            " VALUES (herald_address_key('Gone@Example.com'), NULL, 'erased')"
        )
    await run_import(db, settings, b"email\nleft@example.com\n")
    async with db.connection() as conn:
        await conn.execute("UPDATE subscriptions SET status = 'unsubscribed'")
    view = await run_import(
        db, settings, b"email,name\ngone@example.com,G\nleft@example.com,L\nnew@example.com,N\n"
    )
    counts = view.record.counts
    assert (counts.imported, counts.updated, counts.skipped) == (1, 0, 2)
    found = await subscribers(db)
    assert "gone@example.com" not in found
    assert found["left@example.com"]["status"] == "unsubscribed"
    assert found["left@example.com"]["name"] == ""


async def test_rejected_rows_are_reported_and_the_rest_imported(
    db: Database, settings: Settings
) -> None:
    data = (
        b"email,name,note\n"
        b"good@example.com,Good,ok\n"
        b"not-an-address,Bad,x\n"
        b"\n"
        b'quoted@example.com,Q,"multi\nline, quoted"\n'
        b"name@example.com,Evil <script>,x\n"
        b"extra@example.com,A,B,C\n"
        b"\xff\xfe@example.com,X,y\n"
        b"dup@example.com,First,a\n"
        b"DUP@example.com,,b\n"
    )
    view = await run_import(db, settings, data)
    counts = view.record.counts
    assert (counts.imported, counts.updated, counts.rejected) == (3, 1, 4)
    assert view.job.message == (
        "Import finished: 3 imported, 1 updated, 0 skipped (suppressed), 4 rejected."
    )
    service = ImportService(db, settings)
    errors = await service.errors(view.job.id)
    assert [(e.line, e.email) for e in errors] == [
        (3, "not-an-address"),
        (7, "name@example.com"),  # the quoted field above spans lines 5 and 6
        (8, "extra@example.com"),
        (9, None),
    ]
    by_line = {e.line: e.error for e in errors}
    assert "not a valid email address" in by_line[3]
    assert "must not contain" in by_line[7]
    assert "fields" in by_line[8]
    assert "UTF-8" in by_line[9]
    found = await subscribers(db)
    assert found["quoted@example.com"]["attributes"] == {"note": "multi\nline, quoted"}
    assert found["dup@example.com"]["attributes"] == {"note": "b"}
    assert found["dup@example.com"]["name"] == "First"


async def test_the_error_report_reads_every_page_in_line_order(
    db: Database, settings: Settings
) -> None:
    """A report of more rejected rows than one page (5,000) and than one piece (64 KiB)
    of the download: every row once, in line order, after the header."""
    data = b"email\n" + b"".join(b"bad%d\n" % i for i in range(12_001))
    view = await run_import(db, settings, data)
    assert view.record.counts.rejected == 12_001
    service = ImportService(db, settings)
    pieces_ = [piece async for piece in service.error_report(view.job.id)]
    assert len(pieces_) > 2
    rows = list(csv.reader(io.StringIO("".join(pieces_))))
    assert rows[0] == ["line", "email", "error"]
    assert [(int(r[0]), r[1]) for r in rows[1:]] == [(i + 2, f"bad{i}") for i in range(12_001)]


async def test_recent_imports_come_newest_first_with_their_own_lists(
    db: Database, settings: Settings
) -> None:
    await add_list(db, "news")
    await add_list(db, "offers")
    first = await run_import(db, settings, b"email\na@example.com\n", lists=("news",))
    second = await run_import(db, settings, b"email\nb@example.com\n", lists=("offers", "default"))
    service = ImportService(db, settings)
    held = await service.upload("held.csv", pieces(b"email\n"), created_by=None)
    recent = await service.recent()
    assert [v.job.id for v in recent] == [held.job.id, second.job.id, first.job.id]
    assert [[ref.slug for ref in v.lists] for v in recent] == [
        [],
        ["default", "offers"],  # by name: "Newsletter", "offers"
        ["news"],
    ]
    assert [v.state for v in recent] == ["mapping", "done", "done"]
    assert [v.record.counts.imported for v in recent] == [0, 1, 1]
    assert len(await service.recent(limit=2)) == 2


async def test_missing_email_column_is_refused_naming_it(db: Database, settings: Settings) -> None:
    from herald.core.errors import ValidationError

    service = ImportService(db, settings)
    view = await service.upload("x.csv", pieces(b"name,city\nAnn,Paris\n"), created_by=None)
    with pytest.raises(ValidationError, match="no email column"):
        await service.start(view.job.id, roles=None, list_slugs=["default"], mode=Mode.CONFIRMED)


async def test_unknown_list_is_refused(db: Database, settings: Settings) -> None:
    from herald.core.errors import ValidationError

    service = ImportService(db, settings)
    view = await service.upload("x.csv", pieces(b"email\na@example.com\n"), created_by=None)
    with pytest.raises(ValidationError, match="nope"):
        await service.start(view.job.id, roles=None, list_slugs=["nope"], mode=Mode.CONFIRMED)
    with pytest.raises(ValidationError, match="no list with the slug 'aaaa"):
        await service.start(
            view.job.id, roles=None, list_slugs=["a" * 100_000], mode=Mode.CONFIRMED
        )


async def test_a_held_upload_is_not_run_before_it_is_started(
    db: Database, settings: Settings
) -> None:
    service = ImportService(db, settings)
    await service.upload("x.csv", pieces(b"email\na@example.com\n"), created_by=None)
    runner = JobRunner(db, {import_job.KIND: ImportJob(settings)}, lease_seconds=30)
    assert await runner.run_one() is False


async def test_resumes_from_the_checkpoint_after_a_lost_step(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Small batches, tiny chunks and pieces (records cut across chunk boundaries); a step
    that fails after writing rolls back whole, and the next run starts at the checkpoint."""
    monkeypatch.setattr(import_job, "CHUNK_BYTES", 64)
    monkeypatch.setattr(import_job, "PIECE_BYTES", 16)
    from herald.imports import service as import_service

    monkeypatch.setattr(import_service, "CHUNK_BYTES", 64)
    lines = [b"email,name,n"] + [f'user{i}@example.com,"User, {i}",{i}'.encode() for i in range(53)]
    data = b"\n".join(lines) + b"\n"
    service = ImportService(db, settings)
    view = await service.upload("x.csv", pieces(data, 5), created_by=None)
    view = await service.start(view.job.id, roles=None, list_slugs=["default"], mode=Mode.OPT_IN)
    handler = ImportJob(settings, batch_size=10)
    calls = 0
    real = handler._confirmations

    async def crash_on_third(conn, members):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        await real(conn, members)
        if calls == 3:
            raise RuntimeError("killed mid-step")

    object.__setattr__(handler, "_confirmations", crash_on_third)
    ran = await run_now(db, view.job, handler, budget_seconds=60, lease_seconds=30)
    assert ran.status is JobStatus.FAILED  # the error fails this run …
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE jobs SET status = 'queued', message = NULL, finished_at = NULL WHERE id = $1",
            view.job.id,
        )  # … and is revived here as a worker would find it after a SIGKILL
        job = await jobs.get(conn, view.job.id)
    assert job is not None
    assert job.done == 20
    handler = ImportJob(settings, batch_size=10)
    done = await run_now(db, job, handler, budget_seconds=60, lease_seconds=30)
    assert done.status is JobStatus.DONE, done.message
    final = await service.get(view.job.id)
    assert final.record.counts.imported == 53
    found = await subscribers(db)
    assert len(found) == 53
    assert found["user7@example.com"]["name"] == "User, 7"
    assert found["user52@example.com"]["attributes"] == {"n": "52"}
    assert set((await confirmations(db)).values()) == {1}
    assert len(await confirmations(db)) == 53


async def test_an_import_cannot_be_started_twice(db: Database, settings: Settings) -> None:
    from herald.core.errors import Conflict

    service = ImportService(db, settings)
    view = await service.upload("x.csv", pieces(b"email\na@example.com\n"), created_by=None)
    await service.start(view.job.id, roles=None, list_slugs=["default"], mode=Mode.CONFIRMED)
    with pytest.raises(Conflict):
        await service.start(view.job.id, roles=None, list_slugs=["default"], mode=Mode.CONFIRMED)


async def test_two_starts_at_once_start_the_import_once(db: Database, settings: Settings) -> None:
    from herald.core.errors import Conflict

    service = ImportService(db, settings)
    view = await service.upload("x.csv", pieces(b"email\na@example.com\n"), created_by=None)
    outcomes = await asyncio.gather(
        *(
            service.start(view.job.id, roles=None, list_slugs=["default"], mode=mode)
            for mode in (Mode.CONFIRMED, Mode.OPT_IN)
        ),
        return_exceptions=True,
    )
    started = [o for o in outcomes if isinstance(o, ImportView)]
    assert len(started) == 1
    assert [type(o) for o in outcomes if not isinstance(o, ImportView)] == [Conflict]
    final = await service.get(view.job.id)
    assert final.record.mode is started[0].record.mode
    assert final.record.hold_token is None


async def test_an_upload_broken_off_midway_is_cancelled(db: Database, settings: Settings) -> None:
    """The client goes away after 2 MiB: the import is cancelled, never run."""

    async def broken() -> AsyncIterator[bytes]:
        yield b"email\n" + b"a@example.com\n" * (2 * 1024 * 1024 // 14)
        raise ConnectionResetError("the client went away")

    service = ImportService(db, settings)
    with pytest.raises(ConnectionResetError):
        await service.upload("x.csv", broken(), created_by=None)
    [view] = await service.recent()
    assert view.job.status is JobStatus.CANCELLED
    assert view.job.message == "the upload did not finish"
    assert view.record.uploaded_at is None


async def test_unknown_import(db: Database, settings: Settings) -> None:
    from herald.core.errors import NotFound

    with pytest.raises(NotFound):
        await ImportService(db, settings).get(uuid.uuid4())


async def test_the_cli_imports_and_exports(
    database_url: str, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``herald subscribers import`` runs the job itself (no worker here) and prints the
    summary line; ``export`` writes CSV and JSON Lines to standard output."""
    from typer.testing import CliRunner

    from herald.composition.cli.main import app

    monkeypatch.setenv("HERALD_DATABASE_URL", database_url)
    monkeypatch.setenv("HERALD_DATA_DIR", str(tmp_path))
    source = tmp_path / "people.csv"
    source.write_bytes(b"email,name,city\nann@example.com,Ann,Paris\nbad,B,x\nbob@example.com,,\n")
    runner = CliRunner()
    result = await asyncio.to_thread(
        runner.invoke,
        app,
        ["subscribers", "import", str(source), "--list", "default", "--mode", "confirmed"],
    )
    assert result.exit_code == 0, result.output
    assert "2 imported, 0 updated, 0 skipped (suppressed), 1 rejected" in result.stdout
    missing = await asyncio.to_thread(
        runner.invoke, app, ["subscribers", "import", str(source), "--list", "nope"]
    )
    assert missing.exit_code == 1
    assert "nope" in missing.output
    exported = await asyncio.to_thread(runner.invoke, app, ["subscribers", "export"])
    assert exported.exit_code == 0, exported.output
    rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert rows[0] == ["email", "name", "status", "created_at", "confirmed_at", "attributes"]
    assert sorted((r[0], r[2], r[5]) for r in rows[1:]) == [
        ("ann@example.com", "confirmed", '{"city": "Paris"}'),
        ("bob@example.com", "confirmed", "{}"),
    ]
    as_json = await asyncio.to_thread(
        runner.invoke, app, ["subscribers", "export", "--list", "default", "--format", "json"]
    )
    lines = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert {line["email"] for line in lines} == {"ann@example.com", "bob@example.com"}
    assert lines[0]["attributes"] in ({"city": "Paris"}, {})


async def test_two_imports_of_the_same_addresses_at_once_write_each_once(
    db: Database, settings: Settings
) -> None:
    """Overlapping files imported concurrently (each in its own runner): every address
    exists once, with one membership; each import counts every row it wrote."""
    rows = "".join(f"p{i}@example.com,P {i}\n" for i in range(3000))
    data = ("email,name\n" + rows).encode()
    reverse = ("email,name\n" + "".join(reversed(rows.splitlines(keepends=True)))).encode()
    first, second = await asyncio.gather(
        run_import(db, settings, data), run_import(db, settings, reverse)
    )
    for view in (first, second):
        counts = view.record.counts
        assert counts.imported + counts.updated == 3000
    assert first.record.counts.imported + second.record.counts.imported == 3000
    async with db.connection() as conn:
        found = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM subscriptions) AS s,"
            " (SELECT count(*) FROM list_memberships) AS m"
        )
    assert (found["s"], found["m"]) == (3000, 3000)


async def test_an_upload_never_started_is_failed_once_its_hold_runs_out(
    db: Database, settings: Settings
) -> None:
    service = ImportService(db, settings)
    view = await service.upload("x.csv", pieces(b"email\na@example.com\n"), created_by=None)
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE jobs SET leased_until = now() - interval '1 second' WHERE id = $1",
            view.job.id,
        )
    runner = JobRunner(db, {import_job.KIND: ImportJob(settings)}, lease_seconds=30)
    assert await runner.run_one() is True
    ended = await service.get(view.job.id)
    assert ended.job.status is JobStatus.FAILED
    assert "never started" in (ended.job.message or "")
    from herald.core.errors import Conflict

    with pytest.raises(Conflict):
        await service.start(view.job.id, roles=None, list_slugs=["default"], mode=Mode.CONFIRMED)


async def test_opt_in_to_a_new_list_of_a_confirmed_reader_is_confirmed_by_its_link(
    db: Database, settings: Settings
) -> None:
    """A confirmed reader imported (opt-in) into another list: that membership waits, one
    email goes out, and its link confirms it (the sign-up's confirmation flow)."""
    import re

    from herald.subscriptions.service import ConfirmOutcome, SubscriptionService

    await add_list(db, "weekly")
    await run_import(db, settings, b"email\nann@example.com\n", mode=Mode.CONFIRMED)
    await run_import(db, settings, b"email\nann@example.com\n", mode=Mode.OPT_IN, lists=("weekly",))
    found = await subscribers(db)
    assert found["ann@example.com"]["lists"] == ["default:confirmed", "weekly:pending_confirmation"]
    async with db.connection() as conn:
        message = await conn.fetchval(
            "SELECT message::text FROM deliveries WHERE kind = 'confirmation'"
        )
    token = re.search(r"subscription_token=([A-Za-z0-9]+)", message)
    assert token is not None
    outcome = await SubscriptionService(db, settings).confirm(token.group(1))
    assert outcome is ConfirmOutcome.CONFIRMED
    found = await subscribers(db)
    assert found["ann@example.com"]["lists"] == ["default:confirmed", "weekly:confirmed"]


async def test_an_import_whose_list_is_deleted_fails_instead_of_joining_the_default_list(
    db: Database, settings: Settings
) -> None:
    await add_list(db, "gone")
    service = ImportService(db, settings)
    view = await service.upload("x.csv", pieces(b"email\na@example.com\n"), created_by=None)
    view = await service.start(view.job.id, roles=None, list_slugs=["gone"], mode=Mode.CONFIRMED)
    async with db.connection() as conn:
        await conn.execute("DELETE FROM lists WHERE slug = 'gone'")
    ran = await run_now(db, view.job, ImportJob(settings), budget_seconds=30, lease_seconds=30)
    assert ran.status is JobStatus.FAILED
    assert "deleted" in (ran.message or "")
    assert await subscribers(db) == {}
