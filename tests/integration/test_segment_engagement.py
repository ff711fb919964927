"""Segments on engagement: ``{"engagement": "opened" | "clicked", "within_days": N}``
selects the readers a person opened (clicked in) a tracked issue for lately — machine opens
(privacy proxies, scanners) and opens before the window left out, an erased reader's
anonymous rows ignored, and ``not`` its exact complement (never NULL)."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from herald.core.db import Database
from herald.core.errors import ValidationError
from herald.segments.builder import Builder, describe
from herald.segments.compiler import compile_filter
from herald.segments.domain import parse_filter
from herald.segments.saved import to_json
from tests.support.newsletters import add_subscribers

# name → (opens: (days ago, machine)…, clicks: (days ago, machine)…)
READERS = {
    "fresh": ([(1, False)], []),
    "clicker": ([(2, False)], [(2, False)]),
    "stale": ([(40, False)], [(40, False)]),
    "machine": ([(1, True)], [(1, True)]),  # Apple's proxy and a scanner only
    "silent": ([], []),
}


async def seed(conn: asyncpg.Connection, ids: list[uuid.UUID]) -> dict[str, uuid.UUID]:
    issue = uuid.uuid4()
    await conn.execute(
        "INSERT INTO newsletter_issues (id, title, html_content, text_content, status,"
        " published_at, recipients) VALUES ($1, 'Tracked', '<p>x</p>', 'x', 'sent', now(), 5)",
        issue,
    )
    named = dict(zip(READERS, ids, strict=True))
    for name, reader in named.items():
        delivery = await conn.fetchval(
            "INSERT INTO deliveries (kind, recipient, subscriber_id, issue_id, status,"
            " max_attempts) VALUES ('issue', $1, $2, $3, 'sent', 5) RETURNING id",
            f"{name}@example.com",
            reader,
            issue,
        )
        opens, clicks = READERS[name]
        for days, machine in opens:
            await conn.execute(
                "INSERT INTO engagement_opens (issue_id, delivery_id, machine, opened_at)"
                " VALUES ($1, $2, $3, now() - make_interval(days => $4))",
                issue,
                delivery,
                machine,
                days,
            )
        for days, machine in clicks:
            await conn.execute(
                "INSERT INTO engagement_clicks (issue_id, link, delivery_id, machine,"
                " first_at, last_at) VALUES ($1, 0, $2, $3, now() - make_interval(days => $4),"
                " now() - make_interval(days => $4))",
                issue,
                delivery,
                machine,
                days,
            )
    # An erased reader's delivery keeps its opens, anonymous (subscriber_id NULL): a NULL
    # in the subquery would make every NOT IN unknown.
    anonymous = await conn.fetchval(
        "INSERT INTO deliveries (kind, recipient, issue_id, status, max_attempts)"
        " VALUES ('issue', 'gone@example.com', $1, 'sent', 5) RETURNING id",
        issue,
    )
    await conn.execute(
        "INSERT INTO engagement_opens (issue_id, delivery_id, machine) VALUES ($1, $2, false)",
        issue,
        anonymous,
    )
    return named


async def selected(conn: asyncpg.Connection, raw: object, named: dict[str, uuid.UUID]) -> set[str]:
    condition, params = compile_filter(parse_filter(raw), alias="s", first_param=1)
    rows = await conn.fetch(f"SELECT s.id FROM subscriptions AS s WHERE {condition}", *params)
    by_id = {v: k for k, v in named.items()}
    return {by_id[r["id"]] for r in rows if r["id"] in by_id}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"engagement": "opened", "within_days": 7}, {"fresh", "clicker"}),
        ({"engagement": "opened", "within_days": 60}, {"fresh", "clicker", "stale"}),
        ({"engagement": "clicked", "within_days": 7}, {"clicker"}),
        ({"not": {"engagement": "opened", "within_days": 7}}, {"stale", "machine", "silent"}),
        (
            {
                "all": [
                    {"engagement": "opened", "within_days": 60},
                    {"not": {"engagement": "clicked", "within_days": 30}},
                ]
            },
            {"fresh", "stale"},
        ),
    ],
)
async def test_engagement_conditions_select_the_readers_who_engaged(
    db: Database, raw: object, expected: set[str]
) -> None:
    ids = await add_subscribers(db, len(READERS))
    async with db.connection() as conn:
        named = await seed(conn, ids)
        assert await selected(conn, raw, named) == expected


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"engagement": "read", "within_days": 7}, "must be opened or clicked"),
        ({"engagement": "opened"}, "missing within_days"),
        ({"engagement": "opened", "within_days": 0}, "whole number from 1"),
        ({"engagement": "opened", "within_days": True}, "whole number from 1"),
        ({"engagement": "opened", "within_days": 7, "issue": "x"}, "unknown key"),
    ],
)
def test_bad_engagement_conditions_are_refused(raw: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        parse_filter(raw)


def test_the_builder_shows_engagement_as_rows_and_back() -> None:
    raw = {
        "all": [
            {"engagement": "opened", "within_days": 30},
            {"not": {"engagement": "clicked", "within_days": 90}},
        ]
    }
    assert to_json(parse_filter(raw)) == raw
    builder = Builder.from_filter("Engaged", raw)
    assert builder.mode == "rows"
    assert [(r.field.value, r.op, r.value) for r in builder.rows] == [
        ("engagement", "opened", "30"),
        ("engagement", "not_clicked", "90"),
    ]
    assert builder.filter_json() == raw
    assert describe(raw) == (
        "opened an issue within the last 30 days and did not click a link within the last 90 days"
    )
    form = {"field_0": "engagement", "op_0": "opened", "value_0": "x"}
    with pytest.raises(ValidationError, match="Condition 1: write a number of days"):
        Builder.from_form(form).filter_json()


async def test_the_window_is_read_through_its_index_not_every_open(db: Database) -> None:
    """The fan-out evaluates a segment once per chunk: the window must come from migration
    0033's index, not from a scan of every open ever recorded."""
    [reader] = await add_subscribers(db, 1)
    async with db.connection() as conn:
        issue = uuid.uuid4()
        await conn.execute(
            "INSERT INTO engagement_opens (issue_id, delivery_id, machine, opened_at)"
            " SELECT $1, g, g % 3 = 0, now() - make_interval(days => 30 + g % 700)"
            " FROM generate_series(1, 50000) AS g",
            issue,
        )
        await conn.execute("ANALYZE engagement_opens")
        condition, params = compile_filter(
            parse_filter({"engagement": "opened", "within_days": 7}), alias="s", first_param=2
        )
        plan = "\n".join(
            row[0]
            for row in await conn.fetch(
                f"EXPLAIN SELECT s.id FROM subscriptions AS s WHERE s.id = $1 AND {condition}",
                reader,
                *params,
            )
        )
    assert "engagement_opens_window" in plan, plan
