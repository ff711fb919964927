"""The admin issue and subscriber pages, driven through HTTP like a browser would."""

from __future__ import annotations

import html
import re
import uuid
from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.issues.service import IssueService
from tests.support.newsletters import (
    CSRF,
    add_subscribers,
    drain,
    fan_out,
    issue_worker,
)
from tests.support.queue import RecordingProvider

ISSUE_URL = re.compile(r"^/admin/issues/([0-9a-f-]{36})$")
PREVIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; frame-ancestors 'none'; "
    "form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox"
)

# A subscriber's own page (not the import, export or suppression pages beside the list).
SUBSCRIBER_LINK = re.compile(r'href="/admin/subscribers/[0-9a-f-]{36}"')


async def token(client: httpx.AsyncClient, url: str = "/admin/issues") -> str:
    page = await client.get(url)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found
    return found.group(1)


async def create(client: httpx.AsyncClient, **fields: str) -> uuid.UUID:
    data = {
        "title": "Weekly #1",
        "format": "markdown",
        "markdown": "Hello **{{ subscriber.name }}**",
    }
    data.update(fields)
    data.setdefault("csrf_token", await token(client, "/admin/issues/new"))
    response = await client.post("/admin/issues/new", data=data)
    assert response.status_code == 303, response.text
    found = ISSUE_URL.match(response.headers["location"])
    assert found, response.headers["location"]
    return uuid.UUID(found.group(1))


async def act(
    client: httpx.AsyncClient, issue_id: uuid.UUID, action: str, **fields: str
) -> httpx.Response:
    """Post one of the issue page's forms; follow the redirect; return the page shown."""
    data = {"csrf_token": await token(client, f"/admin/issues/{issue_id}"), **fields}
    response = await client.post(f"/admin/issues/{issue_id}/{action}", data=data)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/admin/issues/{issue_id}"
    return await client.get(response.headers["location"])


def flashes(page: httpx.Response) -> list[tuple[str, str]]:
    found = re.findall(r'<p class="(flash|error)" role="status">([^<]*)</p>', page.text)
    return [(level, html.unescape(text)) for level, text in found]


async def fetchval(db: Database, query: str, *args: object) -> object:
    async with db.connection() as conn:
        return await conn.fetchval(query, *args)


async def issue_status(db: Database, issue_id: uuid.UUID) -> str:
    status = await fetchval(db, "SELECT status FROM newsletter_issues WHERE id = $1", issue_id)
    assert isinstance(status, str)
    return status


# -- access ----------------------------------------------------------------------------

SOME_ID = "00000000-0000-4000-8000-000000000000"
GETS = [
    "/admin/issues",
    "/admin/issues/new",
    f"/admin/issues/{SOME_ID}",
    f"/admin/issues/{SOME_ID}/edit",
    f"/admin/issues/{SOME_ID}/preview?format=html",
    f"/admin/issues/{SOME_ID}/events",
    "/admin/subscribers",
    f"/admin/subscribers/{SOME_ID}",
]
POSTS = [
    "/admin/issues/new",
    *(
        f"/admin/issues/{SOME_ID}/{a}"
        for a in ("edit", "test", "publish", "schedule", "cancel", "retry-failed")
    ),
]


@pytest.mark.parametrize("url", GETS)
async def test_anonymous_visitors_are_sent_to_login(client: httpx.AsyncClient, url: str) -> None:
    response = await client.get(url)
    assert (response.status_code, response.headers["location"]) == (303, "/login")


@pytest.mark.parametrize("url", POSTS)
async def test_anonymous_posts_are_sent_to_login_before_csrf(
    client: httpx.AsyncClient, url: str
) -> None:
    response = await client.post(url, data={"title": "x"})
    assert (response.status_code, response.headers["location"]) == (303, "/login")


@pytest.mark.parametrize(
    "action", ["edit", "test", "publish", "schedule", "cancel", "retry-failed"]
)
async def test_actions_without_a_valid_csrf_token_are_refused(
    admin_client: httpx.AsyncClient, db: Database, action: str
) -> None:
    await add_subscribers(db, 2)
    issue_id = await create(admin_client)
    for data in ({}, {"csrf_token": "forged"}):
        data |= {"title": "Changed", "email": "qa@example.com", "scheduled_at": "2099-01-01T10:00"}
        response = await admin_client.post(f"/admin/issues/{issue_id}/{action}", data=data)
        assert response.status_code == 403
    assert await issue_status(db, issue_id) == "draft"
    assert await fetchval(db, "SELECT count(*) FROM deliveries") == 0
    assert await fetchval(db, "SELECT title FROM newsletter_issues") == "Weekly #1"


async def test_creating_a_draft_needs_a_csrf_token(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    response = await admin_client.post("/admin/issues/new", data={"title": "T", "markdown": "x"})
    assert response.status_code == 403
    assert await fetchval(db, "SELECT count(*) FROM newsletter_issues") == 0


async def test_unknown_issues_and_subscribers_are_404(admin_client: httpx.AsyncClient) -> None:
    for url in GETS[2:6] + GETS[7:]:
        assert (await admin_client.get(url)).status_code == 404, url


# -- drafts ------------------------------------------------------------------------------


async def test_a_markdown_draft(admin_client: httpx.AsyncClient, db: Database) -> None:
    issue_id = await create(admin_client, markdown="# Hello\n\nSome **bold** news.")
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT * FROM newsletter_issues WHERE id = $1", issue_id)
    assert row is not None
    assert row["status"] == "draft"
    assert row["markdown"] == "# Hello\n\nSome **bold** news."
    assert "<strong>bold</strong>" in row["html_content"]
    assert "Some bold news." in row["text_content"]
    page = await admin_client.get(f"/admin/issues/{issue_id}")
    assert flashes(page) == [("flash", "The draft has been saved.")]
    assert 'id="issue-status" class="status status-draft">draft<' in page.text
    assert '<p id="progress-summary">Not published yet.</p>' in page.text
    listing = await admin_client.get("/admin/issues")
    assert f'href="/admin/issues/{issue_id}">Weekly #1</a>' in listing.text
    assert 'href="/admin/issues/new"' in listing.text


async def test_an_html_and_text_draft(admin_client: httpx.AsyncClient, db: Database) -> None:
    issue_id = await create(
        admin_client,
        format="html",
        markdown="ignored when the format is HTML",
        html_content="<p>Hand-written <em>HTML</em></p>",
        text_content="Hand-written text",
    )
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT * FROM newsletter_issues WHERE id = $1", issue_id)
    assert row is not None
    assert (row["markdown"], row["html_content"], row["text_content"]) == (
        None,
        "<p>Hand-written <em>HTML</em></p>",
        "Hand-written text",
    )


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"title": ""}, "title must not be empty"),
        ({"markdown": "  "}, "the Markdown body must not be empty"),
        ({"markdown": "Hi {{ subscriber.name"}, "template error on line 1"),
        ({"format": "html", "html_content": "", "text_content": ""}, "the issue needs content"),
    ],
)
async def test_invalid_drafts_show_the_form_again_with_what_was_typed(
    admin_client: httpx.AsyncClient, db: Database, fields: dict[str, str], message: str
) -> None:
    data = {
        "title": "Keep <me>",
        "format": "markdown",
        "markdown": "Typed & kept",
        "csrf_token": await token(admin_client, "/admin/issues/new"),
        **fields,
    }
    response = await admin_client.post("/admin/issues/new", data=data)
    assert response.status_code == 400
    assert message in html.unescape(response.text)
    assert 'role="alert"' in response.text
    if fields.get("title") != "":
        assert 'value="Keep &lt;me&gt;"' in response.text
    if "markdown" not in fields:
        assert ">Typed &amp; kept</textarea>" in response.text
    assert await fetchval(db, "SELECT count(*) FROM newsletter_issues") == 0


async def test_editing_a_draft_until_it_is_published(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    issue_id = await create(admin_client, markdown="First version")
    form = await admin_client.get(f"/admin/issues/{issue_id}/edit")
    assert form.status_code == 200
    assert ">First version</textarea>" in form.text
    assert 'value="markdown" checked' in form.text

    data = {
        "csrf_token": await token(admin_client, f"/admin/issues/{issue_id}/edit"),
        "title": "Weekly #1 (revised)",
        "format": "html",
        "html_content": "<p>Second</p>",
        "text_content": "",
    }
    response = await admin_client.post(f"/admin/issues/{issue_id}/edit", data=data)
    assert (response.status_code, response.headers["location"]) == (
        303,
        f"/admin/issues/{issue_id}",
    )
    async with db.connection() as conn:
        row = await conn.fetchrow("SELECT * FROM newsletter_issues WHERE id = $1", issue_id)
    assert row is not None
    assert (row["title"], row["markdown"], row["text_content"]) == (
        "Weekly #1 (revised)",
        None,
        "Second",
    )

    bad = await admin_client.post(f"/admin/issues/{issue_id}/edit", data={**data, "title": ""})
    assert bad.status_code == 400
    assert "title must not be empty" in bad.text

    await act(admin_client, issue_id, "publish")
    refused = await admin_client.get(f"/admin/issues/{issue_id}/edit")
    assert refused.headers["location"] == f"/admin/issues/{issue_id}"
    page = await admin_client.get(refused.headers["location"])
    assert flashes(page) == [("error", "This issue is publishing: it can no longer be changed.")]
    late = await admin_client.post(f"/admin/issues/{issue_id}/edit", data=data)
    assert late.status_code == 303
    assert (
        "can no longer be changed"
        in flashes(await admin_client.get(f"/admin/issues/{issue_id}"))[0][1]
    )


# -- previews ----------------------------------------------------------------------------


async def test_the_html_preview_is_the_email_with_a_strict_policy(
    admin_client: httpx.AsyncClient,
) -> None:
    issue_id = await create(
        admin_client,
        title="News <b>&</b> views",
        format="html",
        html_content='<p style="color:red">Hi {{ subscriber.name }}, {{ "<i>not markup</i>" }}</p>'
        "<script>alert(1)</script>",
        text_content="Hi {{ subscriber.name }} <{{ subscriber.email }}>",
    )
    response = await admin_client.get(f"/admin/issues/{issue_id}/preview?format=html")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == PREVIEW_CSP
    assert "script-src" not in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    body = response.text
    assert "<title>Preview: News &lt;b&gt;&amp;&lt;/b&gt; views</title>" in body
    # the layout's CSS inlined, the editor's own style winning
    assert re.search(
        r'<p style="[^"]*;color:red">Hi admin, &lt;i&gt;not markup&lt;/i&gt;</p>', body
    )
    assert "/unsubscribe/one-click?token=preview" in body  # Herald's footer, inert link

    text = await admin_client.get(f"/admin/issues/{issue_id}/preview", params={"format": "text"})
    assert text.status_code == 200
    assert text.headers["content-type"] == "text/plain; charset=utf-8"
    assert text.text.startswith("Hi admin <preview@example.com>")
    assert "Unsubscribe: http://herald.test/unsubscribe/one-click?token=preview" in text.text

    wrong = await admin_client.get(f"/admin/issues/{issue_id}/preview?format=pdf")
    assert wrong.status_code == 400


# -- test sends, publishing, schedules, retries ------------------------------------------


async def test_a_test_send_queues_one_email_to_that_address(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    await add_subscribers(db, 3)
    issue_id = await create(admin_client)
    page = await act(admin_client, issue_id, "test", email="qa@example.com")
    assert flashes(page) == [("flash", "A test email is on its way to qa@example.com.")]
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT kind, recipient, message FROM deliveries")
    assert [(r["kind"], r["recipient"]) for r in rows] == [("test", "qa@example.com")]
    assert '"[TEST] Weekly #1"' in rows[0]["message"]
    assert re.search(r"Hello <strong style=[^>]*>admin</strong>", rows[0]["message"])
    assert await issue_status(db, issue_id) == "draft"

    data = {"csrf_token": await token(admin_client, f"/admin/issues/{issue_id}")}
    refused = await admin_client.post(
        f"/admin/issues/{issue_id}/test", data={**data, "email": "not-an-address"}
    )
    assert refused.status_code == 400
    assert "&#39;not-an-address&#39; is not a valid email address" in refused.text
    assert await fetchval(db, "SELECT count(*) FROM deliveries") == 1


async def test_publishing_queues_one_delivery_per_confirmed_subscriber_once(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 3)
    await add_subscribers(db, 2, status="pending_confirmation", prefix="pending")
    issue_id = await create(admin_client)
    page = await act(admin_client, issue_id, "publish")
    assert flashes(page) == [
        ("flash", "The issue is published: it is being queued for the readers it targets.")
    ]
    assert await issue_status(db, issue_id) == "publishing"
    # The request only marked the issue; the workers queue its recipients.
    assert '<p id="progress-summary">Queueing recipients: 0 so far; 0.0% of those done.</p>' in (
        page.text
    )
    await fan_out(IssueService(db, settings))
    page = await admin_client.get(f"/admin/issues/{issue_id}")
    assert 'id="issue-status" class="status status-publishing">publishing<' in page.text
    assert 'data-count="queued">3<' in page.text
    assert '<p id="progress-summary">0.0% of 3 recipients</p>' in page.text
    assert 'data-status="publishing"' in page.text
    assert 'id="publish"' not in page.text  # no second publish button

    again = await act(admin_client, issue_id, "publish")
    [(level, message)] = flashes(again)
    assert level == "error"
    assert "cannot be published again" in message
    assert await fetchval(db, "SELECT count(*) FROM deliveries") == 3
    recipients = await fetchval(
        db, "SELECT string_agg(recipient, ',' ORDER BY recipient) FROM deliveries"
    )
    assert recipients == "reader0@example.com,reader1@example.com,reader2@example.com"


def local_input(at: datetime) -> str:
    """What a datetime-local input submits: no offset, minutes."""
    return at.replace(tzinfo=None).isoformat(timespec="minutes")


async def test_scheduling_then_cancelling(admin_client: httpx.AsyncClient, db: Database) -> None:
    issue_id = await create(admin_client)
    zone = timezone(timedelta(hours=2))
    when = (datetime.now(zone) + timedelta(days=1)).replace(second=0, microsecond=0)
    page = await act(
        admin_client, issue_id, "schedule", scheduled_at=local_input(when), utc_offset="+02:00"
    )
    [(level, message)] = flashes(page)
    in_utc = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M")
    expected = f"The issue is scheduled for {when.isoformat(timespec='minutes')} ({in_utc} UTC)."
    assert (level, message) == ("flash", expected)
    assert await issue_status(db, issue_id) == "scheduled"
    stored = await fetchval(db, "SELECT scheduled_at FROM newsletter_issues")
    assert stored == when.astimezone(UTC)
    assert 'action="/admin/issues/' + str(issue_id) + '/cancel"' in page.text

    # A full ISO-8601 value carries its own offset, which wins over the offset field.
    later = when + timedelta(hours=1)
    await act(
        admin_client, issue_id, "schedule", scheduled_at=later.isoformat(), utc_offset="-05:00"
    )
    assert await fetchval(db, "SELECT scheduled_at FROM newsletter_issues") == later

    page = await act(admin_client, issue_id, "cancel")
    assert flashes(page) == [
        ("flash", "The schedule has been cancelled: the issue is a draft again.")
    ]
    assert await issue_status(db, issue_id) == "draft"
    assert await fetchval(db, "SELECT scheduled_at FROM newsletter_issues") is None
    page = await act(admin_client, issue_id, "cancel")
    [(level, message)] = flashes(page)
    assert level == "error"
    assert "not scheduled" in message


@pytest.mark.parametrize(
    ("scheduled_at", "utc_offset", "message"),
    [
        ("2001-01-01T09:00", "+00:00", "the schedule time must be in the future"),
        ("", "+00:00", "choose a date and time"),
        ("next tuesday", "+00:00", "the schedule time must look like"),
        ("2099-01-01T09:00", "Europe/Paris", "the UTC offset must look like"),
        ("2099-01-01T09:00", "+15:00", "the UTC offset is out of range"),
    ],
)
async def test_bad_schedules_are_refused(
    admin_client: httpx.AsyncClient,
    db: Database,
    scheduled_at: str,
    utc_offset: str,
    message: str,
) -> None:
    issue_id = await create(admin_client)
    page = await act(
        admin_client, issue_id, "schedule", scheduled_at=scheduled_at, utc_offset=utc_offset
    )
    [(level, shown)] = flashes(page)
    assert level == "error"
    assert message in shown
    assert await issue_status(db, issue_id) == "draft"


async def test_retrying_failed_deliveries(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 4)
    issue_id = await create(admin_client)
    await act(admin_client, issue_id, "publish")
    await drain(issue_worker(db, settings, RecordingProvider()))
    assert await issue_status(db, issue_id) == "sent"
    page = await admin_client.get(f"/admin/issues/{issue_id}")
    assert "retry-failed" not in page.text  # nothing failed: no retry button

    async with db.connection() as conn:
        await conn.execute(
            "UPDATE deliveries SET status = 'failed', last_error = 'mailbox full', sent_at = NULL"
            " WHERE recipient IN ('reader1@example.com', 'reader3@example.com')"
        )
    page = await admin_client.get(f"/admin/issues/{issue_id}?status=failed")
    assert "Retry 2 failed deliveries" in page.text
    assert page.text.count("mailbox full") == 3  # two recipients, and the reasons table
    assert '<tr><td>mailbox full</td><td class="num">2</td></tr>' in page.text
    assert "reader0@example.com" not in page.text  # the filter shows failed rows only
    subscriber = await fetchval(
        db, "SELECT id FROM subscriptions WHERE email = 'reader1@example.com'"
    )
    assert f'<a href="/admin/subscribers/{subscriber}">reader1@example.com</a>' in page.text

    page = await act(admin_client, issue_id, "retry-failed")
    assert flashes(page) == [("flash", "2 failed deliveries queued again.")]
    async with db.connection() as conn:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM deliveries GROUP BY status")
    assert {r["status"]: r["n"] for r in rows} == {"sent": 2, "queued": 2}
    assert await issue_status(db, issue_id) == "publishing"

    page = await act(admin_client, issue_id, "retry-failed")
    assert flashes(page) == [("error", "There are no failed deliveries to retry.")]


# -- subscribers -------------------------------------------------------------------------


async def test_the_subscriber_list_searches_and_pages(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    await add_subscribers(db, 60)
    await add_subscribers(db, 1, status="unsubscribed", prefix="Gone_100%")
    first = await admin_client.get("/admin/subscribers")
    assert first.status_code == 200
    assert len(SUBSCRIBER_LINK.findall(first.text)) == 50
    older = re.search(r'rel="next" href="(/admin/subscribers\?after=[^"]+)"', first.text)
    assert older  # keyset pages: the link names the last row shown, not a page number
    assert 'rel="prev"' not in first.text
    second = await admin_client.get(html.unescape(older.group(1)))
    assert len(SUBSCRIBER_LINK.findall(second.text)) == 11
    assert 'rel="next"' not in second.text
    assert 'rel="prev"' in second.text
    pages = {*re.findall(r">([^<]+@example\.com)</a>", first.text + second.text)}
    assert len(pages) == 61  # no address on two pages, none missing

    found = await admin_client.get("/admin/subscribers", params={"q": "READER5"})
    shown = re.findall(r">(reader\d+@example\.com)</a>", found.text)
    assert sorted(shown) == sorted(
        ["reader5@example.com", *(f"reader{n}@example.com" for n in range(50, 60))]
    )
    literal = await admin_client.get("/admin/subscribers", params={"q": "_100%"})
    assert re.findall(r">([^<]+@example\.com)</a>", literal.text) == ["Gone_100%0@example.com"]
    assert "status-unsubscribed" in literal.text
    none = await admin_client.get("/admin/subscribers", params={"q": "nobody"})
    assert "No subscriber matches." in none.text


async def test_a_subscribers_delivery_history(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [subscriber] = await add_subscribers(db, 1)
    issue_id = await create(admin_client, title="History lesson")
    await act(admin_client, issue_id, "publish")
    await drain(issue_worker(db, settings, RecordingProvider()))
    page = await admin_client.get(f"/admin/subscribers/{subscriber}")
    assert page.status_code == 200
    assert "<h1>reader0@example.com</h1>" in page.text
    assert f'<a href="/admin/issues/{issue_id}">History lesson</a>' in page.text
    row = re.search(r'<tr class="event-issue">.*?</tr>', page.text, re.DOTALL)
    assert row  # the timeline: the issue's delivery, with its outcome and attempts
    assert '<span class="status status-sent">sent</span>' in row.group(0)
    assert re.search(r'<td class="wide-only num">1</td>', row.group(0))
    assert '<tr class="event-subscribed">' in page.text
