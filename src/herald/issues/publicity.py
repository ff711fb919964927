"""The editor's choice of an issue's place in the public archive (``publicity.sql``, migration
0030): whether it is public. What it is, with the archive slug the database gave it when it
started publishing (``herald.archive`` shows it), is read with the issue (``get_issue``)."""

from __future__ import annotations

import uuid

from herald.core import sql
from herald.core.db import Connection

P = sql.load("herald.issues", "publicity.sql")


async def set_public(conn: Connection, issue_id: uuid.UUID, public: bool | None) -> None:
    """Make an editable issue public or not; None leaves it as it is (no query)."""
    if public is not None:
        await conn.execute(P["set_public"], issue_id, public)
