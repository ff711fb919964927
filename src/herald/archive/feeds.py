"""A list's archive as RSS 2.0 and Atom, written with ``feedgenerator``.

Links are absolute (``HERALD_BASE_URL``). An entry's id is ``urn:uuid:`` and the issue's id
— RSS ``guid`` with ``isPermaLink="false"``, Atom ``id`` — so it stays the same when the
list's slug changes; the feed's Atom id is the list's. ``published``/``pubDate`` is when the
issue went out, ``updated`` when its row last changed (it was sent). The content is the
anonymous, sanitised copy (RSS: the ``description``; Atom: ``content`` of type html, the
preheader as the summary). Characters XML 1.0 cannot hold are dropped from every value.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal

from feedgenerator import Atom1Feed, Rss201rev2Feed  # type: ignore[import-untyped]

from herald.archive.domain import ArchiveList, Entry, xml_safe


@dataclass(frozen=True, slots=True)
class FeedLinks:
    index: str
    feed: str
    issue: Callable[[str], str]


def write_feed(
    kind: Literal["rss", "atom"],
    news_list: ArchiveList,
    entries: list[Entry],
    copies: Mapping[uuid.UUID, str | None],
    links: FeedLinks,
    newsletter: str,
) -> tuple[bytes, str]:
    """The feed's bytes (UTF-8) and its content type."""
    kwargs = {
        "title": xml_safe(news_list.name),
        "link": links.index,
        "description": xml_safe(news_list.description or f"The archive of {news_list.name}"),
        "feed_url": links.feed,
        "feed_guid": f"urn:uuid:{news_list.id}",
        "author_name": xml_safe(newsletter),
    }
    feed = Rss201rev2Feed(**kwargs) if kind == "rss" else Atom1Feed(**kwargs)
    for entry in entries:
        copy = xml_safe(copies.get(entry.id) or "")
        summary = xml_safe(entry.preheader) or None
        feed.add_item(
            title=xml_safe(entry.title),
            link=links.issue(entry.slug),
            description=copy if kind == "rss" else summary,
            content=copy if kind == "atom" else None,
            unique_id=f"urn:uuid:{entry.id}",
            unique_id_is_permalink=False,
            pubdate=entry.published_at,
            updateddate=entry.updated_at,
        )
    return feed.writeString("utf-8").encode(), feed.content_type
