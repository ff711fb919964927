"""Segment filters compiled to SQL select exactly the rows a pure-Python evaluation of the
same filter selects (tests/support/segments.py), on sample rows with attributes of mixed
types, every status, several lists and spread sign-up times."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from herald.core.errors import ValidationError
from herald.segments.compiler import compile_filter
from herald.segments.domain import MAX_CONDITIONS, STATUSES, parse_filter
from tests.support.segments import Row, matches

LISTS = ("default", "news", "deals")
STRINGS = [
    "Paris",
    "paris",
    "Lyon",
    "",
    "Zürich",
    "a%b_c",
    "10",
    "2024-05-01",
    "2024-05-01T10:00:00Z",
    "2023-13-45",
    "1999-12-31",
    "Par",
    "true",
]
NUMBERS = [0, 1, -1, 2.5, 10, 10**15, 0.1, -0.5, 3]
DATES = ["2024-05-01", "1999-12-31", "2023-01-15", "2030-06-30"]
KEYS = ["city", "age", "vip", "joined", "missing"]
PATHS = [*KEYS, "address.city", "address.zip"]


def _attribute_value(rng: random.Random, depth: int = 0) -> Any:  # noqa: PLR0911
    kind = rng.randrange(8 if depth < 2 else 6)
    if kind == 0:
        return rng.choice(STRINGS)
    if kind == 1:
        return rng.choice(NUMBERS)
    if kind == 2:
        return rng.choice([True, False])
    if kind == 3:
        return None
    if kind == 4:
        return rng.choice(DATES)
    if kind == 5:
        return rng.choice(STRINGS + DATES)
    if kind == 6:
        return [rng.choice(STRINGS), rng.choice(NUMBERS)]
    return {k: _attribute_value(rng, depth + 1) for k in rng.sample(["city", "zip"], 2)}


async def _seed(conn: asyncpg.Connection, count: int = 80) -> None:
    rng = random.Random(20261205)
    now = datetime.now(UTC)
    for slug in LISTS[1:]:
        await conn.execute("INSERT INTO lists (slug, name) VALUES ($1, $1)", slug)
    for i in range(count):
        attributes = {k: _attribute_value(rng) for k in rng.sample([*KEYS[:4], "address"], 3)}
        domain = rng.choice(["example.com", "EXAMPLE.org", "other.net"])
        sid = await conn.fetchval(
            "INSERT INTO subscriptions (id, email, name, status, created_at, attributes)"
            " VALUES ($1, $2, 'x', $3, $4, $5::jsonb) RETURNING id",
            uuid.uuid4(),
            f"reader{i}@{domain}",
            rng.choice(STATUSES),
            now - timedelta(days=rng.choice([0.5, 2, 6, 20, 40, 400, 4000])),
            json.dumps(attributes),
        )
        await conn.execute("DELETE FROM list_memberships WHERE subscriber_id = $1", sid)
        for slug in rng.sample(LISTS, rng.randrange(len(LISTS) + 1)):
            await conn.execute(
                "INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
                " SELECT id, $2, $3, 'test' FROM lists WHERE slug = $1",
                slug,
                sid,
                rng.choice(STATUSES),
            )


async def _rows(conn: asyncpg.Connection) -> list[Row]:
    rows = {
        r["id"]: Row(
            r["id"],
            r["email"],
            r["status"],
            r["created_at"],
            json.loads(r["attributes"], parse_float=Decimal, parse_int=Decimal),
        )
        for r in await conn.fetch(
            "SELECT id, email, status, created_at, attributes::text FROM subscriptions"
        )
    }
    for m in await conn.fetch(
        "SELECT m.subscriber_id, l.slug, m.status FROM list_memberships m"
        " JOIN lists l ON l.id = m.list_id"
    ):
        rows[m["subscriber_id"]].memberships.add((m["slug"], m["status"]))
    return list(rows.values())


def _times() -> st.SearchStrategy[str]:
    now = datetime.now(UTC)
    return st.sampled_from([1, 3, 10, 30, 100, 1000]).map(
        lambda days: (now - timedelta(days=days)).isoformat()
    )


_ATTRIBUTE_OPS = {
    "string": ["eq", "ne", "lt", "lte", "gt", "gte", "contains", "starts_with", "exists", "in"],
    "number": ["eq", "ne", "lt", "lte", "gt", "gte", "exists", "in"],
    "boolean": ["eq", "ne", "exists"],
    "date": ["eq", "ne", "lt", "lte", "gt", "gte", "exists", "in"],
}
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "string": st.sampled_from(STRINGS) | st.text(max_size=4),
    "number": st.sampled_from(NUMBERS)
    | st.integers(-20, 20)
    | st.floats(-100, 100, allow_nan=False).map(lambda f: round(f, 2)),
    "boolean": st.booleans(),
    "date": st.sampled_from(DATES),
}


@st.composite
def _attribute(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(sorted(_ATTRIBUTE_OPS)))
    op = draw(st.sampled_from(_ATTRIBUTE_OPS[kind]))
    out: dict[str, Any] = {"attribute": draw(st.sampled_from(PATHS)), "op": op}
    if op == "exists" and draw(st.booleans()):
        return out
    out["type"] = kind
    if op == "in":
        out["value"] = draw(st.lists(_VALUES[kind], min_size=1, max_size=4))
    elif op != "exists":
        out["value"] = draw(_VALUES[kind])
    return out


CONDITIONS = st.one_of(
    st.lists(st.sampled_from(STATUSES), min_size=1, max_size=3).map(lambda s: {"status": s}),
    st.builds(
        lambda slug, status: {"list": slug, "status": status},
        st.sampled_from([*LISTS, "nope"]),
        st.sampled_from(STATUSES),
    ),
    _attribute(),
    _attribute(),
    st.builds(lambda t: {"created_at": {"before": t}}, _times()),
    st.builds(lambda t: {"created_at": {"after": t}}, _times()),
    st.builds(
        lambda n: {"created_at": {"within_days": n}}, st.sampled_from([1, 5, 30, 365, 36500])
    ),
    st.builds(
        lambda d: {"email_domain": d},
        st.sampled_from(["example.com", "Example.org", "other.net", "nowhere.io"]),
    ),
)
FILTERS = st.recursive(
    CONDITIONS,
    lambda inner: st.one_of(
        st.lists(inner, min_size=1, max_size=4).map(lambda p: {"all": p}),
        st.lists(inner, min_size=1, max_size=4).map(lambda p: {"any": p}),
        inner.map(lambda p: {"not": p}),
    ),
    max_leaves=12,
)


@pytest.mark.slow
def test_compiled_filters_select_what_python_selects(database_url: str) -> None:
    loop = asyncio.new_event_loop()
    conn: asyncpg.Connection = loop.run_until_complete(asyncpg.connect(database_url))
    try:
        loop.run_until_complete(_seed(conn))
        rows = loop.run_until_complete(_rows(conn))
        seen_counts: set[int] = set()

        async def selected(sql: str, params: list[object]) -> tuple[datetime, set[uuid.UUID]]:
            async with conn.transaction():
                now = await conn.fetchval("SELECT now()")
                found = await conn.fetch(
                    f"SELECT s.id FROM subscriptions AS s WHERE {sql}",
                    *params,
                )
            return now, {r["id"] for r in found}

        @settings(
            max_examples=400,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        )
        @given(FILTERS, st.integers(1, 5))
        def check(raw: dict[str, Any], first: int) -> None:
            try:
                node = parse_filter(raw)
            except ValidationError:
                assume(False)
                raise
            sql, params = compile_filter(node, alias="s", first_param=1)
            padding = [f"${i}::int IS NOT NULL" for i in range(1, first)]
            if padding:
                sql, params = compile_filter(node, alias="s", first_param=first)
                sql = " AND ".join([*padding, sql])
                params = [*range(1, first), *params]
            now, got = loop.run_until_complete(selected(sql, params))
            expected = {row.id for row in rows if matches(node, row, now)}
            assert got == expected, (raw, sql, params)
            seen_counts.add(len(expected))

        check()
        # The sample makes the filters select varied sets, not always none or all.
        assert len(seen_counts) > 10
    finally:
        loop.run_until_complete(conn.close())
        loop.close()


def test_the_condition_limit_is_enforced() -> None:
    within = {"any": [{"status": ["confirmed"]}] * MAX_CONDITIONS}
    parse_filter(within)
    with pytest.raises(ValidationError, match="at most"):
        parse_filter({"all": [within, {"status": ["confirmed"]}]})
