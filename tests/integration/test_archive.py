"""The public archive and feeds of a list (issue 13 item 7): pages at stable slugs, an index
in keyset pages, RSS 2.0 and Atom read back with feedparser, an anonymous reader's copy,
404s for everything that is not a public sent issue of a public list, and 304s."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import feedparser
import httpx
import pytest

from herald.archive import repository as archive_repository
from herald.archive.service import Archive, Feed, IssuePage
from herald.core.config import Settings
from herald.core.db import Database
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from herald.lists.domain import ListDraft
from herald.lists.service import ListService
from tests.support.newsletters import add_subscribers, drain, issue_worker
from tests.support.queue import RecordingProvider

BASE = "http://herald.test"
T0 = datetime(2026, 11, 1, 9, 0, tzinfo=UTC)


async def make_list(
    db: Database, settings: Settings, slug: str, visibility: str = "public"
) -> None:
    await ListService(db, settings).create(
        ListDraft.parse(
            name=slug.title(), slug=slug, visibility=visibility, description=f"All about {slug}."
        )
    )


async def sent_issue(
    db: Database,
    title: str,
    *,
    lists: tuple[str, ...] = ("weekly",),
    public: bool = True,
    html: str = "<p>Hello</p>",
    at: datetime = T0,
    status: str = "sent",
) -> tuple[uuid.UUID, str | None]:
    """An issue that went out at ``at`` (through the same status changes as a publish)."""
    issue_id = uuid.uuid4()
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO newsletter_issues (id, title, html_content, text_content, public)"
            " VALUES ($1, $2, $3, 'text', $4)",
            issue_id,
            title,
            html,
            public,
        )
        await conn.execute(
            "INSERT INTO issue_lists (issue_id, list_id)"
            " SELECT $1, id FROM lists WHERE slug = ANY($2::text[])",
            issue_id,
            list(lists),
        )
        if status != "draft":
            await conn.execute(
                "UPDATE newsletter_issues SET status = 'publishing', published_at = $2,"
                " fanout_done_at = $2, recipients = 0 WHERE id = $1",
                issue_id,
                at,
            )
        if status == "sent":
            await conn.execute(
                "UPDATE newsletter_issues SET status = 'sent', completed_at = $2,"
                " updated_at = $2 WHERE id = $1",
                issue_id,
                at + timedelta(minutes=5),
            )
        slug = await conn.fetchval(
            "SELECT archive_slug FROM newsletter_issues WHERE id = $1", issue_id
        )
    return issue_id, slug


@pytest.fixture
async def weekly(db: Database, settings: Settings) -> None:
    await make_list(db, settings, "weekly")
    await make_list(db, settings, "secret", "private")
    await make_list(db, settings, "other")


def parsed(response: httpx.Response) -> feedparser.FeedParserDict:
    feed = feedparser.parse(response.content)
    assert not feed.bozo, feed.get("bozo_exception")
    return feed


@pytest.mark.parametrize(
    ("kind", "content_type", "version"),
    [("rss", "application/rss+xml", "rss20"), ("atom", "application/atom+xml", "atom10")],
)
async def test_both_feeds_list_the_public_sent_issues_newest_first(
    client: httpx.AsyncClient,
    db: Database,
    weekly: None,
    kind: str,
    content_type: str,
    version: str,
) -> None:
    first, first_slug = await sent_issue(db, "First news", html="<p>One <b>bold</b></p>")
    second, second_slug = await sent_issue(db, "Second news", at=T0 + timedelta(days=7))
    await sent_issue(db, "Private", public=False, at=T0 + timedelta(days=1))
    await sent_issue(db, "Still sending", status="publishing", at=T0 + timedelta(days=2))
    await sent_issue(db, "Draft", status="draft")
    await sent_issue(db, "Elsewhere", lists=("other",), at=T0 + timedelta(days=3))
    response = await client.get(f"/archive/weekly/feed.{kind}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(content_type)
    feed = parsed(response)
    assert feed.version == version
    assert feed.feed.title == "Weekly"
    assert feed.feed.link == f"{BASE}/archive/weekly"
    assert [e.title for e in feed.entries] == ["Second news", "First news"]
    latest, oldest = feed.entries
    assert latest.link == f"{BASE}/archive/weekly/{second_slug}"
    assert oldest.link == f"{BASE}/archive/weekly/{first_slug}"
    assert latest.id == f"urn:uuid:{second}"
    assert oldest.id == f"urn:uuid:{first}"
    assert oldest.published_parsed[:5] == (2026, 11, 1, 9, 0)
    if kind == "atom":
        assert oldest.updated_parsed[:5] == (2026, 11, 1, 9, 5)
        assert feed.feed.updated_parsed[:5] == (2026, 11, 8, 9, 5)
        html = oldest.content[0].value
    else:
        html = oldest.description
    assert "One <b" in html
    assert "bold</b>" in html
    # The same feed read again is the same bytes: ids and links are stable.
    assert (await client.get(f"/archive/weekly/feed.{kind}")).content == response.content


async def test_an_issue_page_is_indexable_branded_and_links_to_the_sign_up(
    client: httpx.AsyncClient, db: Database, weekly: None
) -> None:
    _, slug = await sent_issue(db, "Hello world", html='<p style="color:#123456">Hi</p>')
    response = await client.get(f"/archive/weekly/{slug}")
    assert response.status_code == 200, response.text
    assert slug == "hello-world"
    page = response.text
    assert '<h1 dir="auto">Hello world</h1>' in page
    assert f'<link rel="canonical" href="{BASE}/archive/weekly/hello-world">' in page
    assert f'href="{BASE}/l/weekly"' in page
    assert "color:#123456" in page, "the email's inline styles are kept"
    assert "noindex" not in page
    assert "x-robots-tag" not in response.headers
    csp = response.headers["content-security-policy"]
    assert "script-src" not in csp
    assert "default-src 'none'" in csp
    assert response.headers["cache-control"].startswith("public")
    index = await client.get("/archive/weekly")
    assert index.status_code == 200
    assert f'href="{BASE}/archive/weekly/hello-world"' in index.text
    assert 'type="application/rss+xml"' in index.text


async def test_a_personalised_issue_is_rendered_for_an_anonymous_reader(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    """Through the real publish and worker: the readers got their own copy, the archive an
    anonymous one."""
    await add_subscribers(db, 2)
    service = IssueService(db, settings)
    content = IssueContent.parse(
        title="Personal",
        markdown=(
            "Dear {{ subscriber.name }} ({{ subscriber.email }}),\n\n"
            "Weather in {{ subscriber.attributes.city | default('your town') }}: fine.\n\n"
            "[Leave]({{ unsubscribe_url }})\n\n<script>alert(1)</script>"
            '<img src="x" onerror="alert(2)">'
        ),
        public=True,
    )
    issue_id = await service.create_draft(content, None)
    await service.publish(issue_id)
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    await service.complete_finished()
    issue = await service.get(issue_id)
    assert issue.status.value == "sent"
    assert issue.public
    assert issue.archive_slug == "personal"
    assert any("Dear Reader 0" in m.html_body for m in provider.messages)
    page = (await client.get("/archive/default/personal")).text
    assert "Dear reader ()," in page
    assert "Weather in your town" in page
    assert "@example.com" not in page
    assert f'href="{BASE}/l/default"' in page, "the unsubscribe placeholder: the list's page"
    for private in ("/v/", "/unsubscribe", "/preferences", "<script", "onerror", "alert("):
        assert private not in page, private
    feed = parsed(await client.get("/archive/default/feed.atom"))
    assert "Dear reader ()," in feed.entries[0].content[0].value
    assert "@example.com" not in feed.entries[0].content[0].value


async def test_everything_but_a_public_sent_issue_of_a_public_list_is_a_404(
    client: httpx.AsyncClient, db: Database, weekly: None
) -> None:
    _, private_slug = await sent_issue(db, "Private one", public=False)
    assert private_slug is None
    _, public_slug = await sent_issue(db, "Public one")
    _, sending_slug = await sent_issue(db, "Sending one", status="publishing")
    _, secret_slug = await sent_issue(db, "Secret one", lists=("secret",))
    assert public_slug
    assert sending_slug
    assert secret_slug
    for path in (
        "/archive/secret",
        "/archive/secret/feed.rss",
        "/archive/secret/feed.atom",
        f"/archive/secret/{secret_slug}",
        "/archive/nope",
        "/archive/nope/feed.rss",
        "/archive/NOT_A_SLUG",
        "/archive/" + "a" * 500,
        f"/archive/weekly/{sending_slug}",
        "/archive/weekly/private-one",
        f"/archive/other/{public_slug}",
        "/archive/weekly/Not-A-Slug",
        "/archive/weekly/" + "a" * 300,
        "/archive/weekly/%00",
    ):
        response = await client.get(path)
        assert response.status_code == 404, (path, response.status_code)
        assert "Public one" not in response.text
    assert (await client.get(f"/archive/weekly/{public_slug}")).status_code == 200


async def test_conditional_requests_get_304_until_something_changes(
    client: httpx.AsyncClient, db: Database, weekly: None
) -> None:
    _, slug = await sent_issue(db, "Cached")
    for path in (
        "/archive/weekly/feed.rss",
        "/archive/weekly/feed.atom",
        f"/archive/weekly/{slug}",
    ):
        first = await client.get(path)
        etag, modified = first.headers["etag"], first.headers["last-modified"]
        assert etag.startswith('"')
        assert modified.endswith("GMT")
        again = await client.get(path, headers={"If-None-Match": etag})
        assert again.status_code == 304, path
        assert again.content == b""
        assert again.headers["etag"] == etag
        by_date = await client.get(path, headers={"If-Modified-Since": modified})
        assert by_date.status_code == 304, path
        stale = await client.get(path, headers={"If-None-Match": '"other"'})
        assert stale.status_code == 200
        junk = await client.get(path, headers={"If-Modified-Since": "yesterday-ish"})
        assert junk.status_code == 200
    feed = await client.get("/archive/weekly/feed.rss")
    await sent_issue(db, "Newer", at=T0 + timedelta(days=1))
    changed = await client.get(
        "/archive/weekly/feed.rss", headers={"If-None-Match": feed.headers["etag"]}
    )
    assert changed.status_code == 200
    assert changed.headers["etag"] != feed.headers["etag"]
    assert [e.title for e in parsed(changed).entries] == ["Newer", "Cached"]


async def test_a_conditional_request_of_an_issue_page_reads_no_body(
    client: httpx.AsyncClient, db: Database, weekly: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Up to 2 MiB of HTML per issue: a revalidation answered 304 must not fetch it.
    _, slug = await sent_issue(db, "Revalidated")
    first = await client.get(f"/archive/weekly/{slug}")
    assert first.status_code == 200

    def no_body(*_: object) -> None:
        raise AssertionError("an issue body was read for a 304")

    monkeypatch.setattr(archive_repository, "entry", no_body, raising=False)
    monkeypatch.setattr(archive_repository, "bodies", no_body)
    again = await client.get(
        f"/archive/weekly/{slug}", headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304


async def test_a_copy_already_made_is_served_without_reading_its_body_again(
    client: httpx.AsyncClient, db: Database, weekly: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A feed is 20 issues of up to 2 MiB each, fetched by every feed reader: once their
    # copies are made, a 200 (a reader without validators) reads only what is not cached.
    _, old_slug = await sent_issue(db, "Old news")
    first = await client.get("/archive/weekly/feed.atom")
    assert first.status_code == 200
    page = await client.get(f"/archive/weekly/{old_slug}")
    assert page.status_code == 200
    newer, _ = await sent_issue(db, "Newer news", at=T0 + timedelta(days=1))
    read: list[list[uuid.UUID]] = []
    real_bodies = archive_repository.bodies

    async def counted(conn: object, issue_ids: list[uuid.UUID]) -> object:
        read.append(list(issue_ids))
        return await real_bodies(conn, issue_ids)  # type: ignore[arg-type]

    monkeypatch.setattr(archive_repository, "bodies", counted)
    feed = parsed(await client.get("/archive/weekly/feed.atom"))
    assert [e.title for e in feed.entries] == ["Newer news", "Old news"]
    assert all("Hello" in e.content[0].value for e in feed.entries)
    assert read == [[newer]], "only the new issue's body is read"
    again = await client.get("/archive/weekly/feed.rss")
    assert again.status_code == 200
    assert read == [[newer]], "every copy of the RSS feed was made: no body read"
    repeat = await client.get(f"/archive/weekly/{old_slug}")
    assert repeat.status_code == 200
    assert repeat.text == page.text
    assert read == [[newer]]


async def test_a_configured_branding_change_changes_the_validators(
    db: Database, settings: Settings, weekly: None
) -> None:
    # HERALD_NEWSLETTER__NAME (and the other configured branding) is under the admin's
    # design, not in its version: a restart with a new name renders other pages and feeds,
    # so a cache holding the old ones must not be told 304.
    _, slug = await sent_issue(db, "Branded")
    assert slug is not None
    renamed = settings.model_copy(
        update={"newsletter": settings.newsletter.model_copy(update={"name": "Renamed news"})}
    )
    before, after = Archive(db, settings), Archive(db, renamed)
    page = await before.issue("weekly", slug)
    assert isinstance(page, IssuePage)
    again = await after.issue("weekly", slug, page.validators.etag)
    assert isinstance(again, IssuePage), "not a 304: the masthead's name changed"
    assert again.masthead.name == "Renamed news"
    feed = await before.feed("weekly", "atom")
    assert isinstance(feed, Feed)
    renamed_feed = await after.feed("weekly", "atom", feed.validators.etag)
    assert isinstance(renamed_feed, Feed), "not a 304: the feed's author changed"
    assert b"Renamed news" in renamed_feed.body


async def test_the_index_pages_through_every_issue_once_newest_first(
    client: httpx.AsyncClient, db: Database, weekly: None
) -> None:
    slugs = [(await sent_issue(db, "Same title", at=T0 + timedelta(hours=n)))[1] for n in range(45)]
    assert slugs[0] == "same-title"
    assert slugs[1] == "same-title-2"
    assert len(set(slugs)) == 45
    seen: list[str] = []
    path = "/archive/weekly"
    for _ in range(5):
        page = await client.get(path)
        assert page.status_code == 200, page.text
        seen += [s for s in slugs if f'href="{BASE}/archive/weekly/{s}"' in page.text]
        if 'rel="next"' not in page.text:
            break
        cursor = page.text.split("?before=")[1].split('"')[0]
        path = f"/archive/weekly?before={cursor}"
    assert sorted(seen) == sorted(slugs)
    assert len(seen) == 45
    bad = await client.get("/archive/weekly?before=no-such-issue")
    assert bad.status_code == 400
    assert "before" in bad.text
    junk = await client.get("/archive/weekly?before=%3Cscript%3E")
    assert junk.status_code == 400


@pytest.mark.parametrize(
    "title",
    [
        "<script>alert('x')</script> & friends",
        "مرحبا بالعالم — عدد ٣",
        "🎉 Party 🎉🎉",
        "Ctrl\x01char\x1f title",
        "x" * 200,
    ],
)
async def test_hostile_titles_are_escaped_and_the_feeds_still_parse(
    client: httpx.AsyncClient, db: Database, weekly: None, title: str
) -> None:
    _, slug = await sent_issue(db, title)
    page = await client.get(f"/archive/weekly/{slug}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text
    for kind in ("rss", "atom"):
        feed = parsed(await client.get(f"/archive/weekly/feed.{kind}"))
        expected = title.replace("\x01", "").replace("\x1f", "")
        assert feed.entries[0].title == expected


async def test_a_title_too_long_for_an_issue_is_refused_before_it_gets_a_slug() -> None:
    with pytest.raises(Exception, match="at most 200"):
        IssueContent.parse(title="x" * 500, markdown="hi", public=True)
