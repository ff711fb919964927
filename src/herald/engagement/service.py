"""Engagement tracking's use cases: recording an open or a click from a reader's signed URL,
and an issue's results. Setting an issue's tracking, freezing its links at publishing and
the readers' opt-outs happen in the issue's and the preference centre's own transactions
(:mod:`herald.engagement.repository`, called by those services)."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import NotFound
from herald.engagement import repository
from herald.engagement.domain import (
    MACHINE_SECONDS,
    Hit,
    LinkResult,
    Results,
    machine_click,
    machine_open,
)
from herald.engagement.links import MAX_LINKS
from herald.engagement.tokens import parse_token

NO_LINK = "This link does not exist. Use the links in the email you received."
_INDEX = re.compile(r"[0-9]{1,3}")


@dataclass(frozen=True)
class Engagement:
    db: Database
    settings: Settings

    async def opened(self, token: str, hit: Hit) -> None:
        """Count a pixel fetch; a token that is not ours, or names a delivery of an untracked
        issue, records nothing (and the pixel is served all the same: no oracle)."""
        tracked = parse_token(self.settings, token)
        if tracked is None:
            return
        async with self.db.connection() as conn:
            await repository.record_open(
                conn, tracked.issue_id, tracked.delivery_id, machine_open(hit), MACHINE_SECONDS
            )

    async def clicked(self, token: str, index: str, hit: Hit) -> str:
        """The stored target of link ``index`` of the token's issue, the click counted; a
        forged token, an index the issue does not have, or an untracked issue is NotFound
        (never a redirect)."""
        tracked = parse_token(self.settings, token)
        if tracked is None or not _INDEX.fullmatch(index) or int(index) >= MAX_LINKS:
            raise NotFound(NO_LINK)
        async with self.db.connection() as conn:
            url = await repository.record_click(
                conn,
                tracked.issue_id,
                tracked.delivery_id,
                int(index),
                machine_click(hit),
                MACHINE_SECONDS,
            )
        if url is None:
            raise NotFound(NO_LINK)
        return url

    async def results(self, issue_id: uuid.UUID) -> Results | None:
        """An issue's opens and clicks; None when it is not tracked."""
        async with self.db.connection() as conn:
            tracked, links = await repository.tracking_of(conn, issue_id)
            if not tracked:
                return None
            counts = await repository.counts(conn, issue_id) if links is not None else None
        if counts is None:
            return Results(0, 0, 0, 0, (), published=False)
        per_link = tuple(
            LinkResult(
                url,
                unique_clicks=counts.clicks.get((n, False), (0, 0))[0],
                clicks=counts.clicks.get((n, False), (0, 0))[1],
                machine_clicks=counts.clicks.get((n, True), (0, 0))[1],
            )
            for n, url in enumerate(links or ())
        )
        return Results(
            unique_opens=counts.opens.get(False, 0),
            machine_opens=counts.opens.get(True, 0),
            unique_clickers=counts.clickers,
            clicks=sum(link.clicks for link in per_link),
            links=per_link,
            published=True,
        )
