"""The only door to an issue's place in the public archive (``publicity.sql``, migration
0030): whether the editor made it public, and the archive slug the database gave it when it
started publishing (``herald.archive`` shows it)."""

from __future__ import annotations

import uuid
from dataclasses import replace

from herald.core import sql
from herald.core.db import Connection
from herald.issues.domain import Issue

P = sql.load("herald.issues", "publicity.sql")


async def set_public(conn: Connection, issue_id: uuid.UUID, public: bool | None) -> None:
    """Make an editable issue public or not; None leaves it as it is (no query)."""
    if public is not None:
        await conn.execute(P["set_public"], issue_id, public)


async def with_publicity(conn: Connection, issue: Issue) -> Issue:
    row = await conn.fetchrow(P["publicity"], issue.id)
    if row is None:
        return issue
    return replace(issue, public=row["public"], archive_slug=row["archive_slug"])
