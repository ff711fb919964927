"""The suppression list: its invariant with the fan-out, adding, removing, paging, and
erasure writing an ``erased`` row that forgets the address but still blocks it."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from herald.suppressions import repository as suppressions_repository
from herald.suppressions.domain import Cursor, Filter, Reason
from herald.suppressions.service import PAGE_SIZE, SuppressionList
from tests.support.newsletters import CSRF, add_subscribers, drain, issue_worker, publish_now
from tests.support.queue import RecordingProvider

CONTENT = IssueContent.parse(title="Weekly", text_content="Hello {{ subscriber.name }}")


async def rows(db: Database) -> list[tuple[str | None, str, str]]:
    async with db.connection() as conn:
        found = await conn.fetch("SELECT email, reason, source FROM suppressions ORDER BY email")
    return [(r["email"], r["reason"], r["source"]) for r in found]


async def status_of(db: Database, email: str) -> tuple[str, list[str]]:
    async with db.connection() as conn:
        status = await conn.fetchval("SELECT status FROM subscriptions WHERE email = $1", email)
        lists = await conn.fetch(
            "SELECT m.status FROM list_memberships m JOIN subscriptions s ON s.id = m.subscriber_id"
            " WHERE s.email = $1",
            email,
        )
    return status, [r["status"] for r in lists]


async def test_a_suppressed_address_gets_no_issue(db: Database, settings: Settings) -> None:
    await add_subscribers(db, 3)
    suppressions = SuppressionList(db)
    row, created = await suppressions.add("  Reader1@Example.com ", Reason.MANUAL, source="test")
    assert created
    assert row.email == "Reader1@example.com"  # normalised as a sign-up's (domain lowered)
    assert await status_of(db, "reader1@example.com") == ("unsubscribed", ["unsubscribed"])

    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None)
    assert await publish_now(service, issue_id) == 2
    async with db.connection() as conn:
        recipients = await conn.fetch(
            "SELECT recipient FROM deliveries WHERE issue_id = $1", issue_id
        )
    assert sorted(r["recipient"] for r in recipients) == [
        "reader0@example.com",
        "reader2@example.com",
    ]


async def test_an_address_suppressed_after_the_fan_out_is_not_sent_to(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 3)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None)
    assert await publish_now(service, issue_id) == 3  # queued for all three
    await SuppressionList(db).add("reader2@example.com", Reason.COMPLAINT)
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    assert sorted(provider.sent) == ["reader0@example.com", "reader1@example.com"]
    async with db.connection() as conn:
        status = await conn.fetchval(
            "SELECT status FROM deliveries WHERE recipient = 'reader2@example.com'"
        )
    assert status == "suppressed"


async def test_adding_is_idempotent_and_a_stronger_reason_wins(db: Database) -> None:
    suppressions = SuppressionList(db)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO suppressions (address_key, email, reason, source)"
            " VALUES (herald_address_key('ada@example.com'), 'ada@example.com',"
            "         'unsubscribed', 'x')"
        )
    row, created = await suppressions.add("ada@example.com", Reason.COMPLAINT, source="admin")
    assert (row.reason, created) == (Reason.COMPLAINT, False)
    row, created = await suppressions.add("ADA@example.com", Reason.MANUAL, source="admin")
    assert (row.reason, created) == (Reason.COMPLAINT, False)  # the first strong one stays
    assert await rows(db) == [("ada@example.com", "complaint", "admin")]


async def test_add_many_keeps_adds_rules_for_every_address(db: Database) -> None:
    """The recorder suppresses every batch through add_many: per address the same rules
    as add (a reader's own unsubscribe gives way, a stronger reason stays, an erasure
    stays forgotten) and the same invariant (the subscription unsubscribed at once)."""
    [reader] = await add_subscribers(db, 1)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO suppressions (address_key, email, reason, source) VALUES"
            " (herald_address_key('ada@example.com'), 'ada@example.com', 'unsubscribed', 'x'),"
            " (herald_address_key('bob@example.com'), 'bob@example.com', 'complaint', 'y'),"
            " (herald_address_key('erin@example.com'), NULL, 'erased', 'admin')"
        )
    batch = [
        ("ada@example.com", Reason.HARD_BOUNCE, "smtp: hard bounce"),
        ("bob@example.com", Reason.HARD_BOUNCE, "smtp: hard bounce"),
        ("erin@example.com", Reason.HARD_BOUNCE, "smtp: hard bounce"),
        ("new@example.com", Reason.HARD_BOUNCE, "smtp: hard bounce"),
        ("reader0@example.com", Reason.COMPLAINT, "ses: complaint"),
    ]
    async with db.transaction() as conn:
        added = await suppressions_repository.add_many(conn, batch)

    assert sorted((a.email, a.created, a.unsubscribed) for a in added) == [
        ("ada@example.com", False, None),
        ("bob@example.com", False, None),
        ("erin@example.com", False, None),
        ("new@example.com", True, None),
        ("reader0@example.com", True, reader),
    ]
    assert await rows(db) == [
        ("ada@example.com", "hard_bounce", "smtp: hard bounce"),
        ("bob@example.com", "complaint", "y"),
        ("new@example.com", "hard_bounce", "smtp: hard bounce"),
        ("reader0@example.com", "complaint", "ses: complaint"),
        (None, "erased", "admin"),
    ]
    assert (await status_of(db, "reader0@example.com"))[0] == "unsubscribed"

    # Twice the recorder's largest batch (coalescing.MAX_EVENTS) in one statement.
    many = [(f"m{n}@example.org", Reason.HARD_BOUNCE, "test") for n in range(1000)]
    async with db.transaction() as conn:
        added = await suppressions_repository.add_many(conn, many)
    assert (len(added), sum(a.created for a in added)) == (1000, 1000)


@pytest.mark.parametrize("raw", ["", "nope", "a@b@c", "x" * 400 + "@example.com"])
async def test_a_bad_address_is_a_validation_error(db: Database, raw: str) -> None:
    with pytest.raises(ValidationError) as refused:
        await SuppressionList(db).add(raw)
    assert refused.value.field == "email"
    assert await rows(db) == []


async def test_concurrent_adds_of_one_address_make_one_row(db: Database) -> None:
    await add_subscribers(db, 1)
    suppressions = SuppressionList(db)
    results = await asyncio.gather(
        *(suppressions.add(" reader0@EXAMPLE.com", Reason.MANUAL) for _ in range(8))
    )
    assert sum(created for _, created in results) == 1
    assert await rows(db) == [("reader0@example.com", "manual", "admin")]
    assert (await status_of(db, "reader0@example.com"))[0] == "unsubscribed"


async def test_removing_lifts_but_never_resubscribes(db: Database) -> None:
    await add_subscribers(db, 1)
    suppressions = SuppressionList(db)
    await suppressions.add("reader0@example.com")
    removed = await suppressions.remove(" READER0@example.com")
    assert removed.reason is Reason.MANUAL
    assert await rows(db) == []
    assert (await status_of(db, "reader0@example.com"))[0] == "unsubscribed"
    with pytest.raises(NotFound):
        await suppressions.remove("reader0@example.com")


async def test_an_erasure_forgets_the_address_and_cannot_be_lifted(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    [reader] = await add_subscribers(db, 1, prefix="Erin")
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, status, max_attempts, message)"
            " VALUES ('confirmation', 'Erin0@example.com', $1, 'sent', 5, '{}'),"
            "        ('confirmation', 'Erin0@example.com', $1, 'queued', 5, '{}')",
            reader,
        )
    url = f"/admin/subscribers/{reader}"
    page = await admin_client.get(url)
    csrf = CSRF.search(page.text)
    assert csrf
    await admin_client.post(f"{url}/delete", data={"csrf_token": csrf.group(1)})

    assert await rows(db) == [(None, "erased", "admin")]
    async with db.connection() as conn:
        history = await conn.fetch(
            "SELECT recipient, subscriber_id, status, message FROM deliveries ORDER BY id"
        )
        # The key still matches the address in any case, with spaces around it.
        blocked = await conn.fetchval(
            "SELECT reason FROM suppressions WHERE address_key = herald_address_key($1)",
            "  erin0@EXAMPLE.COM ",
        )
    assert [tuple(r) for r in history] == [
        ("(erased)", None, "sent", None),
        ("(erased)", None, "suppressed", None),
    ]
    assert blocked == "erased"
    suppressions = SuppressionList(db)
    with pytest.raises(Conflict):
        await suppressions.remove("erin0@example.com")
    # Suppressing it again by hand keeps it an erasure, address forgotten.
    row, created = await suppressions.add("Erin0@example.com")
    assert (row.email, row.reason, created) == (None, Reason.ERASED, False)
    found = await suppressions.page(Filter.parse(q="erin0@example.com"))
    assert [(r.email, r.reason) for r in found.rows] == [(None, Reason.ERASED)]
    assert (await suppressions.page(Filter.parse(q="erin0"))).rows == []  # no address kept


async def test_pages_walk_every_row_once_with_counts(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO suppressions (address_key, email, reason, created_at)"
            " SELECT herald_address_key(e), e, r, now() - make_interval(secs => n % 7)"
            " FROM (SELECT n, 'p' || n || '@example.com' AS e,"
            "       (ARRAY['manual', 'unsubscribed', 'hard_bounce'])[n % 3 + 1] AS r"
            "       FROM generate_series(1, 130) AS n) AS x"
        )
    suppressions = SuppressionList(db)
    seen: list[str | None] = []
    after = ""
    while True:
        found = await suppressions.page(Filter(), after=after)
        assert len(found.rows) <= PAGE_SIZE
        seen += [r.email for r in found.rows]
        if found.older is None:
            break
        after = str(found.older)
    assert len(seen) == 130 == len(set(seen))
    assert found.counts[Reason.MANUAL] + found.counts[Reason.UNSUBSCRIBED] == 87
    assert found.total == 130
    only = await suppressions.page(Filter.parse(reason="hard_bounce", q="@EXAMPLE"))
    assert len(only.rows) == 43
    assert {r.reason for r in only.rows} == {Reason.HARD_BOUNCE}
    with pytest.raises(ValidationError):
        await suppressions.page(Filter(), after="garbage~zz")
    with pytest.raises(ValidationError):
        Filter.parse(reason="bogus")
    assert Cursor.parse(str(found.older or Cursor.start())) is not None


async def test_many_ids_unique_keys(db: Database) -> None:
    # Two subscribers erased in one statement whose addresses share a key (they differ
    # only in case, which the unique index on lower(email) forbids: so never) — and the
    # DISTINCT keeps one statement from touching a key twice.
    ids = await add_subscribers(db, 3)
    async with db.transaction() as conn:
        from herald.subscriptions import repository

        assert await repository.delete_many(conn, [*ids, uuid.uuid4()], "test") == 3
    assert await rows(db) == [(None, "erased", "test")] * 3


async def test_the_kept_counts_follow_every_change(db: Database) -> None:
    ids = await add_subscribers(db, 4)
    suppressions = SuppressionList(db)
    await suppressions.add("reader0@example.com")
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO suppressions (address_key, email, reason)"
            " VALUES (herald_address_key('reader1@example.com'), 'reader1@example.com',"
            "         'unsubscribed')"
        )
    await suppressions.add("reader1@example.com", Reason.COMPLAINT)  # unsubscribed → complaint
    await suppressions.remove("reader0@example.com")
    async with db.transaction() as conn:
        from herald.subscriptions import repository

        await repository.delete_many(conn, ids[1:3], "test")  # complaint → erased, + erased
    async with db.connection() as conn:
        real = await conn.fetch("SELECT reason, count(*) AS n FROM suppressions GROUP BY reason")
    counts = (await suppressions.page(Filter())).counts
    assert {r: n for r, n in counts.items() if n} == {
        Reason(row["reason"]): row["n"] for row in real
    }
    assert counts[Reason.ERASED] == 2
    assert counts[Reason.COMPLAINT] == 0


async def test_a_search_finds_the_same_rows_by_walk_and_by_index(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO suppressions (address_key, email, reason, created_at)"
            " SELECT herald_address_key(e), e, 'manual', now() - make_interval(secs => n)"
            " FROM (SELECT n, CASE WHEN n % 9 = 0 THEN 'Rare.' ELSE 'p' END || n"
            "              || '@example.com' AS e FROM generate_series(1, 300) AS n) AS x"
        )
    from herald.suppressions import service

    suppressions = SuppressionList(db)

    async def walk(query: str) -> list[str | None]:
        seen: list[str | None] = []
        after = ""
        while True:
            found = await suppressions.page(Filter.parse(q=query), after=after)
            seen += [r.email for r in found.rows]
            if found.older is None:
                return seen
            after = str(found.older)

    by_walk = {q: await walk(q) for q in ("rare.", "E.1", "@EXAMPLE", "zzz", "9@")}
    monkeypatch.setattr(service, "RECENT_WALK", 3)  # the index answers instead
    for query, rows in by_walk.items():
        assert await walk(query) == rows, query
    assert len(by_walk["rare."]) == 33
    assert len(by_walk["@EXAMPLE"]) == 300
    assert by_walk["zzz"] == []


async def test_a_walk_that_reached_the_end_of_the_list_is_the_answer(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A reason with few rows among many (5 complaints in 2,505 rows) and a text all its
    # rows hold: the walk reads every complaint, so the trigram index — which would fetch
    # every address holding the text to keep 5 — is not asked (0.1 s saved at 1M rows).
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO suppressions (address_key, email, reason, created_at)"
            " SELECT herald_address_key(e), e, r, now() - make_interval(secs => n)"
            " FROM (SELECT n, 'p' || n || '@example.com' AS e,"
            "       CASE WHEN n % 500 = 0 THEN 'complaint' ELSE 'unsubscribed' END AS r"
            "       FROM generate_series(1, 2505) AS n) AS x"
        )
    from herald.suppressions import repository, service

    asked: list[str] = []

    class Recording(dict[str, str]):
        def __getitem__(self, name: str) -> str:
            asked.append(name)
            return super().__getitem__(name)

    monkeypatch.setattr(repository, "Q", Recording(repository.Q))
    suppressions = SuppressionList(db)
    found = await suppressions.page(Filter.parse(reason="complaint", q="@example"))
    assert [r.email for r in found.rows] == [f"p{n}@example.com" for n in range(500, 2505, 500)]
    assert "contains" not in asked
    assert (await suppressions.page(Filter.parse(reason="complaint", q="zzz"))).rows == []
    assert "contains" not in asked
    # A walk cut short by its bound still asks the index, and finds the same rows.
    monkeypatch.setattr(service, "RECENT_WALK", 3)
    again = await suppressions.page(Filter.parse(reason="complaint", q="@example"))
    assert "contains" in asked
    assert again.rows == found.rows
