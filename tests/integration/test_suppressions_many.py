"""``suppressions.repository.add_many``: several addresses suppressed in one statement under
the rules of ``add`` (the subscription unsubscribed in the same statement, a reader's own
``unsubscribed`` upgraded, a stronger reason kept)."""

from __future__ import annotations

from herald.core.db import Database
from herald.suppressions import repository
from herald.suppressions.domain import Reason
from tests.support.newsletters import add_subscribers


async def test_add_many_follows_the_rules_of_add(db: Database) -> None:
    readers = await add_subscribers(db, 3)
    async with db.transaction() as conn:
        await repository.add(conn, "reader1@example.com", Reason.UNSUBSCRIBED, "reader")
        await repository.add(conn, "reader2@example.com", Reason.MANUAL, "admin")
    async with db.transaction() as conn:
        added = await repository.add_many(
            conn,
            [
                ("reader0@example.com", Reason.HARD_BOUNCE, "postmark: hard bounce"),
                ("reader1@example.com", Reason.COMPLAINT, "postmark: complaint"),
                ("reader2@example.com", Reason.COMPLAINT, "postmark: complaint"),
                ("stranger@example.net", Reason.PROVIDER, "postmark: provider suppression"),
            ],
        )
    by_email = {a.email: a for a in added}
    assert {e: (a.created, a.unsubscribed) for e, a in by_email.items()} == {
        "reader0@example.com": (True, readers[0]),
        "reader1@example.com": (False, None),  # unsubscribed by its own suppression before
        "reader2@example.com": (False, None),
        "stranger@example.net": (True, None),
    }
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT email, reason, source FROM suppressions ORDER BY email")
        statuses = await conn.fetch("SELECT status FROM subscriptions ORDER BY email")
        counts = await repository.counts(conn)
    assert [(r["email"], r["reason"], r["source"]) for r in rows] == [
        ("reader0@example.com", "hard_bounce", "postmark: hard bounce"),
        ("reader1@example.com", "complaint", "postmark: complaint"),  # upgraded
        ("reader2@example.com", "manual", "admin"),  # the stronger reason stays
        ("stranger@example.net", "provider", "postmark: provider suppression"),
    ]
    assert [r["status"] for r in statuses] == ["unsubscribed"] * 3
    assert (counts[Reason.HARD_BOUNCE], counts[Reason.COMPLAINT], counts[Reason.MANUAL]) == (
        1,
        1,
        1,
    )
    assert counts[Reason.PROVIDER] == 1
    async with db.transaction() as conn:
        assert await repository.add_many(conn, []) == []
