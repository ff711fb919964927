"""Migration 0030: an issue's archive slug, given once by the database when a public issue
starts publishing, derived from its title, unique, and never changed afterwards."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from herald.core.db import Database


async def _issue(db: Database, title: str, *, public: bool = True) -> uuid.UUID:
    issue_id = uuid.uuid4()
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO newsletter_issues (id, title, html_content, text_content, public)"
            " VALUES ($1, $2, '<p>x</p>', 'x', $3)",
            issue_id,
            title,
            public,
        )
    return issue_id


async def _publish(db: Database, issue_id: uuid.UUID) -> str | None:
    async with db.connection() as conn:
        slug: str | None = await conn.fetchval(
            "UPDATE newsletter_issues SET status = 'publishing', published_at = now()"
            " WHERE id = $1 RETURNING archive_slug",
            issue_id,
        )
    return slug


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Weekly news #12: what's new?", "weekly-news-12-what-s-new"),
        ("Café crème à Zürich", "cafe-creme-a-zurich"),
        ("🎉🎉🎉", "issue"),
        ("مرحبا بالعالم", "issue"),  # RTL, no ASCII letter
        ("\u202eEvil \u202dRTL override", "evil-rtl-override"),
        ("<script>alert(1)</script>", "script-alert-1-script"),
        ("  --  ", "issue"),
        ("\uff26\uff35\uff2c\uff2c width", "full-width"),  # NFKD folds compatibility characters
    ],
)
async def test_the_slug_comes_from_the_title(db: Database, title: str, slug: str) -> None:
    assert await _publish(db, await _issue(db, title)) == slug


async def test_a_long_title_keeps_whole_words_and_a_long_word_is_cut(db: Database) -> None:
    long_title = ("word " * 100).strip()  # 499 characters
    slug = await _publish(db, await _issue(db, long_title))
    assert slug is not None
    assert len(slug) <= 80
    assert set(slug.split("-")) == {"word"}
    one_word = "x" * 500
    assert await _publish(db, await _issue(db, one_word)) == "x" * 80


async def test_same_titles_get_distinct_slugs_that_never_change(db: Database) -> None:
    first = await _issue(db, "Monthly update")
    second = await _issue(db, "Monthly update")
    third = await _issue(db, "Monthly  UPDATE!")
    assert await _publish(db, first) == "monthly-update"
    assert await _publish(db, second) == "monthly-update-2"
    assert await _publish(db, third) == "monthly-update-3"
    async with db.connection() as conn:
        # The title may change (it cannot once published, but the database holds it anyway).
        await conn.execute(
            "UPDATE newsletter_issues SET title = 'Other', status = 'sent' WHERE id = $1", first
        )
        assert (
            await conn.fetchval("SELECT archive_slug FROM newsletter_issues WHERE id = $1", first)
            == "monthly-update"
        )
        for value in ("renamed", None):
            with pytest.raises(asyncpg.CheckViolationError, match="never changes"):
                await conn.execute(
                    "UPDATE newsletter_issues SET archive_slug = $2 WHERE id = $1", first, value
                )


async def test_only_public_issues_get_one_and_a_published_issue_made_public_does(
    db: Database,
) -> None:
    private = await _issue(db, "Members only", public=False)
    assert await _publish(db, private) is None
    async with db.connection() as conn:
        slug = await conn.fetchval(
            "UPDATE newsletter_issues SET public = true WHERE id = $1 RETURNING archive_slug",
            private,
        )
    assert slug == "members-only"
    draft = await _issue(db, "Draft")
    async with db.connection() as conn:
        assert (
            await conn.fetchval(
                "UPDATE newsletter_issues SET title = 'Draft 2' WHERE id = $1"
                " RETURNING archive_slug",
                draft,
            )
            is None
        ), "a draft has no slug yet: its title may still change"


async def test_concurrent_publishes_of_one_title_get_distinct_slugs(db: Database) -> None:
    ids = [await _issue(db, "Race") for _ in range(8)]
    slugs = await asyncio.gather(*(_publish(db, i) for i in ids))
    assert sorted(slugs, key=lambda s: (len(s or ""), s)) == ["race"] + [
        f"race-{n}" for n in range(2, 9)
    ]
