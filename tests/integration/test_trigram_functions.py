"""Migration 0026 rewrote the trigram functions of the substring search: each must give
the same set of trigrams as 0009's versions, or the GIN indexes built with those would
no longer match what queries look for."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

OLD = """
CREATE FUNCTION pg_temp.old_trigrams(t text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT coalesce(array_agg(DISTINCT substr(t, i, 3)), '{}')
    FROM generate_series(1, length(t) - 2) AS i
$$;
CREATE FUNCTION pg_temp.old_subscriber_trigrams(email text, name text) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT pg_temp.old_trigrams(lower(email)) || pg_temp.old_trigrams(lower(name))
$$;
"""

SAMPLES = [
    ("", ""),
    ("a", "b"),
    ("ab@c", "xy"),
    ("ann@example.com", "Ann Lee"),
    ("AAAA@aaaa", "aaaa AAAA"),
    ("ÄÖÜ@Straße.de", "Zoë Ŀĳ"),
    ("İstanbul@x.tr", "ΣΑΣ σας"),
    ("😀😀😀@e.com", "日本語テキスト"),
    ("x" * 300 + "@example.com", "y" * 200),
]


def as_set(expression: str) -> str:
    return (
        f"(SELECT coalesce(array_agg(DISTINCT g ORDER BY g), '{{}}') FROM unnest({expression}) g)"
    )


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(OLD)
        yield connection
    finally:
        await connection.close()


async def test_the_same_trigrams_as_before(conn: asyncpg.Connection) -> None:
    await conn.execute("CREATE TEMP TABLE samples (email text, name text)")
    await conn.executemany("INSERT INTO samples VALUES ($1, $2)", SAMPLES)
    await conn.execute(
        "INSERT INTO samples SELECT 'r' || g || '@d' || g % 7 || '.com', md5(g::text)"
        " FROM generate_series(1, 500) AS g"
    )
    new = as_set("herald_subscriber_trigrams(email, name)")
    old = as_set("pg_temp.old_subscriber_trigrams(email, name)")
    assert (
        await conn.fetchval(f"SELECT count(*) FROM samples WHERE {new} IS DISTINCT FROM {old}") == 0
    )
    new_one = as_set("herald_trigrams(lower(email))")
    old_one = as_set("pg_temp.old_trigrams(lower(email))")
    assert (
        await conn.fetchval(
            f"SELECT count(*) FROM samples WHERE {new_one} IS DISTINCT FROM {old_one}"
        )
        == 0
    )
    assert await conn.fetchval("SELECT count(*) FROM samples") == len(SAMPLES) + 500


async def test_the_search_index_still_finds_a_substring(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "INSERT INTO subscriptions (id, email, name, status)"
        " VALUES (gen_random_uuid(), 'zoe.quill@example.org', 'Zoë Quill', 'confirmed')"
    )
    await conn.execute("SET enable_seqscan = off")
    found = await conn.fetch(
        "SELECT email FROM subscriptions"
        " WHERE herald_subscriber_trigrams(email, name) @> herald_trigrams(lower($1))",
        "QUILL@ex",
    )
    assert [r["email"] for r in found] == ["zoe.quill@example.org"]
