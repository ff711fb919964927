"""The archive's use cases: a list's index page, an issue's page, the two feeds.

Each reads one public list and its public sent issues (one connection, one or two
queries); an issue's copy is rendered once per process, issue and design (a few hundred
kept) for an anonymous reader and sanitised. A feed and an issue page have validators
(``ETag``: a hash of what they are made of — the issues' ids and change times, the list,
the design's version and branding; ``Last-Modified``: the newest of those times), so a
conditional request is answered 304 before any issue body is read or rendered.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from herald.archive import repository
from herald.archive.domain import (
    ANONYMOUS_NAME,
    FEED_SIZE,
    PAGE_SIZE,
    ArchiveList,
    Entry,
    Validators,
    is_issue_slug,
    latest,
    parse_before,
)
from herald.archive.feeds import FeedLinks, write_feed
from herald.archive.sanitize import sanitize
from herald.core import timebox
from herald.core.config import Settings
from herald.core.db import Connection, Database
from herald.core.errors import NotFound, ValidationError
from herald.design.current import current_design
from herald.design.domain import Design
from herald.email.layout import Branding
from herald.issues.rendering import compile_issue, off_loop, render_or_refuse
from herald.lists.domain import is_slug

NO_ARCHIVE = "There is no such archive: the list is unknown or private."
NO_ISSUE = "There is no such issue in this archive."
_CACHE_SIZE = 256
# The sanitiser's limit (besides the render's): the standard library's HTMLParser is
# quadratic on some malformed markup (thousands of unclosed "<a "), which a template's loop
# can produce; 2 MiB of ordinary HTML takes about a second.
SANITIZE_SECONDS = 5.0
RETRY_FAILED_SECONDS = 60.0  # a copy that could not be made is not tried again before

FeedKind = Literal["rss", "atom"]


@dataclass(frozen=True, slots=True)
class Links:
    """The absolute URLs of a list's archive (``HERALD_BASE_URL``)."""

    base: str
    list_slug: str

    @property
    def index(self) -> str:
        return f"{self.base}/archive/{self.list_slug}"

    @property
    def subscribe(self) -> str:
        return f"{self.base}/l/{self.list_slug}"

    def issue(self, slug: str) -> str:
        return f"{self.index}/{slug}"

    def feed(self, kind: FeedKind) -> str:
        return f"{self.index}/feed.{kind}"


@dataclass(frozen=True, slots=True)
class IndexPage:
    news_list: ArchiveList
    entries: list[Entry]
    next_before: str | None  # the cursor of the next (older) page
    first: bool
    links: Links
    masthead: Branding  # accent: a #rrggbb colour (the setting's pattern, 0017's CHECK)


@dataclass(frozen=True, slots=True)
class IssuePage:
    news_list: ArchiveList
    entry: Entry
    content: str  # sanitised HTML
    links: Links
    masthead: Branding  # accent: a #rrggbb colour (the setting's pattern, 0017's CHECK)
    validators: Validators


@dataclass(frozen=True, slots=True)
class Feed:
    body: bytes
    content_type: str
    validators: Validators


@dataclass(frozen=True, slots=True)
class NotModified:
    validators: Validators


_CopyKey = tuple[uuid.UUID, int, str]
_copies: OrderedDict[_CopyKey, str] = OrderedDict()
_failed: OrderedDict[_CopyKey, float] = OrderedDict()  # -> retry after
_copies_lock = threading.Lock()


def _copy_key(entry: Entry, design: Design, links: Links) -> _CopyKey:
    # Per issue, design version and list (the unsubscribe placeholder links to the list's page).
    return (entry.id, design.version, links.list_slug)


def _known_copy(key: _CopyKey) -> tuple[bool, str | None]:
    """Whether the copy is known — made, or failed within :data:`RETRY_FAILED_SECONDS` —
    and the copy (None: it failed). A known copy needs no body read."""
    with _copies_lock:
        cached = _copies.get(key)
        if cached is not None:
            _copies.move_to_end(key)
            return True, cached
        return _failed.get(key, 0.0) > time.monotonic(), None


def _anonymous_copy(entry: Entry, html: str, text: str, design: Design, links: Links) -> str | None:
    """The issue's body for an anonymous reader, sanitised; None when it cannot be rendered
    (a reader's attribute the template cannot do without) or sanitised in time. Cached (see
    :func:`_copy_key`); a failure for :data:`RETRY_FAILED_SECONDS`, so requests do not spend
    the time limits again and again on it."""
    key = _copy_key(entry, design, links)
    known, cached = _known_copy(key)
    if known:
        return cached

    def render() -> str:
        compiled = compile_issue(
            entry.title,
            html,
            text,
            design.branding,
            preheader=entry.preheader,
            layout_source=design.layout_source,
        )
        return compiled.content(name=ANONYMOUS_NAME, unsubscribe_url=links.subscribe)

    try:
        rendered = render_or_refuse(render)
        copy = timebox.run_limited(lambda: sanitize(rendered), SANITIZE_SECONDS)
    except (ValidationError, timebox.TimeLimitExceeded):
        with _copies_lock:
            _failed[key] = time.monotonic() + RETRY_FAILED_SECONDS
            while len(_failed) > _CACHE_SIZE:
                _failed.popitem(last=False)
        return None
    with _copies_lock:
        _copies[key] = copy
        while len(_copies) > _CACHE_SIZE:
            _copies.popitem(last=False)
    return copy


@dataclass(frozen=True)
class Archive:
    db: Database
    settings: Settings

    def _links(self, news_list: ArchiveList) -> Links:
        return Links(self.settings.public_base_url, news_list.slug)

    async def _list(self, conn: Connection, slug: str) -> ArchiveList:
        news_list = await repository.public_list(conn, slug) if is_slug(slug) else None
        if news_list is None:
            raise NotFound(NO_ARCHIVE)
        return news_list

    async def index(self, list_slug: str, before: str | None) -> IndexPage:
        """A page of the list's archive, newest first; ``before``: the slug of the previous
        page's last issue (a slug not in this archive is a 400 naming it)."""
        cursor = parse_before(before)
        async with self.db.connection() as conn:
            news_list = await self._list(conn, list_slug)
            after = None
            if cursor is not None:
                after = await repository.position(conn, news_list, cursor)
                if after is None:
                    raise ValidationError(
                        f"before: no issue of this archive is called {cursor!r}", field="before"
                    )
            rows = await repository.entries(conn, news_list, PAGE_SIZE + 1, after)
        design = await current_design(self.db, self.settings)
        more = len(rows) > PAGE_SIZE
        rows = rows[:PAGE_SIZE]
        return IndexPage(
            news_list,
            rows,
            rows[-1].slug if more else None,
            after is None,
            self._links(news_list),
            design.branding,
        )

    async def issue(
        self,
        list_slug: str,
        slug: str,
        if_none_match: str | None = None,
        if_modified_since: str | None = None,
    ) -> IssuePage | NotModified:
        async with self.db.connection() as conn:
            news_list = await self._list(conn, list_slug)
            entry = (
                await repository.position(conn, news_list, slug) if is_issue_slug(slug) else None
            )
        if entry is None:
            raise NotFound(NO_ISSUE)
        design = await current_design(self.db, self.settings)
        links = self._links(news_list)
        validators = Validators.of(
            "issue",
            entry.id,
            entry.updated_at.isoformat(),
            news_list.slug,
            news_list.name,
            news_list.updated_at.isoformat(),
            design.version,
            design.branding,  # the configured defaults under it are not in the version
            links.base,
            last_modified=latest([entry], news_list),
        )
        if validators.not_modified(if_none_match, if_modified_since):
            return NotModified(validators)
        known, content = _known_copy(_copy_key(entry, design, links))
        if not known:
            async with self.db.connection() as conn:  # the body only now: up to 2 MiB
                bodies = (await repository.bodies(conn, [entry.id])).get(entry.id)
            if bodies is None:
                raise NotFound(NO_ISSUE)
            content = await off_loop(
                lambda: _anonymous_copy(entry, bodies.html, bodies.text, design, links)
            )
        if content is None:
            raise NotFound(NO_ISSUE)
        return IssuePage(news_list, entry, content, links, design.branding, validators)

    async def feed(
        self,
        list_slug: str,
        kind: FeedKind,
        if_none_match: str | None = None,
        if_modified_since: str | None = None,
    ) -> Feed | NotModified:
        """The list's newest :data:`FEED_SIZE` issues as RSS 2.0 or Atom."""
        design = await current_design(self.db, self.settings)
        async with self.db.connection() as conn:
            news_list = await self._list(conn, list_slug)
            entries = await repository.entries(conn, news_list, FEED_SIZE)
            links = self._links(news_list)
            validators = Validators.of(
                kind,
                news_list.id,
                news_list.slug,
                news_list.name,
                news_list.description,
                news_list.updated_at.isoformat(),
                design.version,
                design.branding,
                links.base,
                *(f"{e.id}@{e.updated_at.isoformat()}" for e in entries),
                last_modified=latest(entries, news_list),
            )
            if validators.not_modified(if_none_match, if_modified_since):
                return NotModified(validators)
            # Up to 2 MiB an issue: only the bodies of the copies not made (or failed) yet.
            known = {e.id: _known_copy(_copy_key(e, design, links)) for e in entries}
            missing = [e.id for e in entries if not known[e.id][0]]
            bodies = await repository.bodies(conn, missing) if missing else {}

        def build() -> tuple[bytes, str]:
            copies = {e.id: known[e.id][1] for e in entries}
            for e in entries:
                body = bodies.get(e.id)
                if body is not None:
                    copies[e.id] = _anonymous_copy(e, body.html, body.text, design, links)
            return write_feed(
                kind,
                news_list,
                entries,
                copies,
                FeedLinks(links.index, links.feed(kind), links.issue),
                design.branding.name,
            )

        body, content_type = await off_loop(build)
        return Feed(body, content_type, validators)
