"""Opt-in engagement tracking end to end: a tracked issue's emails, the pixel and click
routes, unique counting under concurrent hits, no open redirect, the reader's opt-out, an
untracked issue, and the results on the issue's page."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.email.message import EmailMessage
from herald.engagement import repository as tracking
from herald.engagement.routes import PIXEL
from herald.engagement.service import Engagement
from herald.engagement.tokens import TrackingLinks
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from herald.preferences.service import PreferenceCentre
from herald.subscriptions.unsubscribe import make_token
from tests.integration.test_issue_pages import create, fetchval, token
from tests.integration.test_preferences import BROWSER, open_page
from tests.support.api import api_client, make_keys, new_app
from tests.support.newsletters import add_subscribers, drain, issue_worker
from tests.support.queue import RecordingProvider

BASE = "http://herald.test"
CONTENT = IssueContent.parse(
    title="Tracked news",
    markdown=(
        "Dear {{ subscriber.name }}, read [the report](https://example.org/report?a=1&b=2),"
        " [the blog](https://blog.example.org/) and [the report again]"
        "(https://example.org/report?a=1&b=2). [Leave]({{ unsubscribe_url }})"
    ),
)
PIXEL_URL = re.compile(r'<img src="http://herald\.test(/t/o/[A-Za-z0-9_.-]+\.gif)"')
CLICK_URL = re.compile(r'href="http://herald\.test(/t/c/[A-Za-z0-9_.-]+)/(\d+)"')
SAFARI = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 Version/17.0"
PERSON = {"User-Agent": SAFARI}


async def send(
    db: Database,
    settings: Settings,
    count: int = 2,
    *,
    track: bool = True,
    content: IssueContent = CONTENT,
) -> tuple[uuid.UUID, list[EmailMessage]]:
    await add_subscribers(db, count, prefix=f"r{uuid.uuid4().hex[:6]}")
    service = IssueService(db, settings)
    issue_id = await service.create_draft(content, None, track=track)
    await service.publish(issue_id)
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    messages = sorted(
        (m for m in provider.messages if m.subject == content.title), key=lambda m: m.recipient
    )
    assert len(messages) >= count  # an earlier send's readers get later issues too
    return issue_id, messages


async def age_sends(db: Database, seconds: int = 3600) -> None:
    """As if the sends were accepted an hour ago: opens and clicks now are a person's."""
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE deliveries SET sent_at = now() - make_interval(secs => $1)", seconds
        )


def pixel_of(message: EmailMessage) -> str:
    found = PIXEL_URL.findall(message.html_body)
    assert len(found) == 1, "one pixel per copy"
    return str(found[0])


def clicks_of(message: EmailMessage) -> list[tuple[str, int]]:
    return [(prefix, int(n)) for prefix, n in CLICK_URL.findall(message.html_body)]


async def results(db: Database, settings: Settings, issue_id: uuid.UUID) -> object:
    return await Engagement(db, settings).results(issue_id)


# -- a tracked issue -------------------------------------------------------------------------


async def test_a_tracked_issue_counts_unique_opens_and_clicks_per_link(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    issue_id, messages = await send(db, settings)
    first, second = messages
    links = clicks_of(first)
    assert [n for _, n in links] == [0, 1, 0], "the repeated target shares its index"
    assert len({prefix for prefix, _ in links}) == 1, "one token per copy"
    assert clicks_of(second)[0][0] != links[0][0], "each reader their own"
    assert "{{" not in first.html_body
    assert "/unsubscribe/one-click?token=" in first.html_body
    assert "/t/" not in first.text_body, "the text part keeps plain links"
    await age_sends(db)

    opened = await client.get(pixel_of(first), headers=PERSON)
    assert opened.status_code == 200
    assert opened.content == PIXEL
    assert opened.headers["content-type"] == "image/gif"
    assert "no-store" in opened.headers["cache-control"]
    await client.get(pixel_of(first), headers=PERSON)  # opened again: still one reader

    prefix, _ = links[0]
    for _ in range(3):
        followed = await client.get(f"{prefix}/0", headers=PERSON)
        assert followed.status_code == 302
        assert followed.headers["location"] == "https://example.org/report?a=1&b=2"
        assert followed.headers["referrer-policy"] == "no-referrer"
    assert (await client.get(f"{prefix}/1", headers=PERSON)).headers["location"] == (
        "https://blog.example.org/"
    )
    shown = await results(db, settings, issue_id)
    assert shown is not None
    assert (shown.unique_opens, shown.machine_opens, shown.unique_clickers) == (1, 0, 1)
    report, blog = shown.links
    assert (report.url, report.unique_clicks, report.clicks) == (
        "https://example.org/report?a=1&b=2",
        1,
        3,
    )
    assert (blog.unique_clicks, blog.clicks, shown.clicks) == (1, 1, 4)


async def test_machines_are_counted_apart(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    issue_id, messages = await send(db, settings, 3)
    # Right after the send: a gateway or a prefetcher, whatever it says it is.
    await client.get(pixel_of(messages[0]), headers=PERSON)
    await age_sends(db)
    await client.get(pixel_of(messages[1]), headers={"User-Agent": "Mozilla/5.0"})  # Apple MPP
    prefix = clicks_of(messages[2])[0][0]
    scanned = await client.head(f"{prefix}/0", headers=PERSON)  # a scanner's HEAD
    assert scanned.status_code == 302
    await client.get(f"{prefix}/1", headers={"User-Agent": "Mimecast URL scanner"})
    shown = await results(db, settings, issue_id)
    assert shown is not None
    assert (shown.unique_opens, shown.machine_opens, shown.unique_clickers) == (0, 2, 0)
    assert [link.machine_clicks for link in shown.links] == [1, 1]
    assert shown.clicks == 0


async def test_concurrent_hits_count_one_reader(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    issue_id, messages = await send(db, settings, 1)
    await age_sends(db)
    pixel, prefix = pixel_of(messages[0]), clicks_of(messages[0])[0][0]
    hits = [client.get(pixel, headers=PERSON) for _ in range(25)]
    hits += [client.get(f"{prefix}/0", headers=PERSON) for _ in range(25)]
    answers = await asyncio.gather(*hits)
    assert {a.status_code for a in answers} == {200, 302}
    shown = await results(db, settings, issue_id)
    assert shown is not None
    assert (shown.unique_opens, shown.unique_clickers) == (1, 1)
    assert (shown.links[0].unique_clicks, shown.links[0].clicks) == (1, 25)
    rows = await fetchval(db, "SELECT count(*) FROM engagement_opens WHERE issue_id = $1", issue_id)
    assert rows == 1


# -- no open redirect, nothing from junk ------------------------------------------------------


async def test_no_url_leads_anywhere_but_a_stored_link(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    _, messages = await send(db, settings, 1)
    other = IssueContent.parse(title="Other", markdown="[one](https://other.example/)")
    _, others = await send(db, settings, 1, content=other)
    prefix = clicks_of(messages[0])[0][0]
    other_prefix = clicks_of(others[0])[0][0]
    token_ = prefix.rsplit("/", 1)[1]
    tampered = token_[:-1] + ("A" if token_[-1] != "A" else "B")
    for path in (
        f"{prefix}/2",  # no third link
        f"{prefix}/999",
        f"{prefix}/-1",
        f"{prefix}/1e1",
        f"{prefix}/{'9' * 5000}",
        f"{prefix}/https:%2F%2Fevil.example",
        f"/t/c/{tampered}/0",
        f"{other_prefix}/1",  # another issue's token with this issue's link index
        "/t/c/junk/0",
        f"/t/c/{'x' * 5000}/0",
        "/t/c/é/0",
        "/t/c/%00/0",
    ):
        answer = await client.get(path, headers={"Accept": "text/html"})
        assert answer.status_code == 404, path
        assert "location" not in answer.headers, path
        assert "does not exist" in answer.text or "Not Found" in answer.text, path
    assert (await client.get(f"{other_prefix}/0")).headers["location"] == "https://other.example/"
    # "1" percent-encoded is still link 1: its stored target, nothing else.
    assert (await client.get(f"{prefix}/%31")).headers["location"] == "https://blog.example.org/"


async def test_the_pixel_answers_junk_with_the_pixel_and_records_nothing(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    issue_id, messages = await send(db, settings, 1)
    pixel = pixel_of(messages[0])
    token_ = pixel.removeprefix("/t/o/").removesuffix(".gif")
    tampered = token_[:5] + ("A" if token_[5] != "A" else "B") + token_[6:]
    for path in (f"/t/o/{tampered}.gif", "/t/o/junk.gif", f"/t/o/{'y' * 5000}.gif", "/t/o/%FF.gif"):
        answer = await client.get(path)
        assert answer.status_code == 200, path
        assert answer.content == PIXEL, path
    assert await fetchval(db, "SELECT count(*) FROM engagement_opens") == 0
    # A real delivery id under a valid signature, but another issue's id: nothing either.
    forged = TrackingLinks(settings, uuid.uuid4()).urls(1)[0].removeprefix(BASE)
    await client.get(forged)
    assert await fetchval(db, "SELECT count(*) FROM engagement_opens") == 0
    shown = await results(db, settings, issue_id)
    assert shown is not None
    assert shown.unique_opens == shown.machine_opens == 0


# -- off: the issue's or the reader's -----------------------------------------------------------


async def test_an_untracked_issue_carries_nothing_and_records_nothing(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    issue_id, messages = await send(db, settings, 1, track=False)
    html = messages[0].html_body
    assert "/t/o/" not in html
    assert "/t/c/" not in html
    assert 'href="https://example.org/report?a=1&amp;b=2"' in html
    delivery_id = await fetchval(db, "SELECT id FROM deliveries WHERE issue_id = $1", issue_id)
    assert isinstance(delivery_id, int)
    # Even a correctly signed URL for one of its deliveries counts nothing and leads nowhere.
    pixel, prefix = TrackingLinks(settings, issue_id).urls(delivery_id)
    await age_sends(db)
    assert (await client.get(pixel.removeprefix(BASE))).status_code == 200
    assert (await client.get(f"{prefix.removeprefix(BASE)}/0")).status_code == 404
    for table in ("engagement_opens", "engagement_clicks", "issue_tracking"):
        assert await fetchval(db, f"SELECT count(*) FROM {table}") == 0
    assert await results(db, settings, issue_id) is None


async def test_a_reader_who_opted_out_gets_a_plain_copy(db: Database, settings: Settings) -> None:
    readers = await add_subscribers(db, 2, prefix="optout")
    async with db.connection() as conn:
        await tracking.set_opt_out(conn, readers[0], out=True)
        assert await tracking.opted_out(conn, readers) == {readers[0]}
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None, track=True)
    await service.publish(issue_id)
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    copies = {m.recipient: m.html_body for m in provider.messages}
    out, kept = copies["optout0@example.com"], copies["optout1@example.com"]
    assert "/t/o/" not in out
    assert "/t/c/" not in out
    assert 'href="https://example.org/report?a=1&amp;b=2"' in out
    assert "/t/o/" in kept
    assert "/t/c/" in kept


async def test_a_reader_who_opts_out_after_the_send_is_no_longer_counted(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    # The copy already in their inbox still carries the pixel and the click URLs: from the
    # moment they turn tracking off, its opens and clicks record nothing (the link still
    # leads to its target), and turned on again they count as before.
    issue_id, [copy] = await send(db, settings, 1)
    await age_sends(db)
    reader = await fetchval(db, "SELECT id FROM subscriptions WHERE email = $1", copy.recipient)
    assert isinstance(reader, uuid.UUID)
    async with db.connection() as conn:
        await tracking.set_opt_out(conn, reader, out=True)
    prefix, n = clicks_of(copy)[0]
    assert (await client.get(pixel_of(copy), headers=PERSON)).status_code == 200
    followed = await client.get(f"{prefix}/{n}", headers=PERSON)
    assert followed.status_code == 302
    assert followed.headers["location"] == "https://example.org/report?a=1&b=2"
    for table in ("engagement_opens", "engagement_clicks"):
        assert await fetchval(db, f"SELECT count(*) FROM {table}") == 0
    async with db.connection() as conn:
        await tracking.set_opt_out(conn, reader, out=False)
    await client.get(pixel_of(copy), headers=PERSON)
    await client.get(f"{prefix}/{n}", headers=PERSON)
    shown = await results(db, settings, issue_id)
    assert shown is not None
    assert (shown.unique_opens, shown.unique_clickers) == (1, 1)


async def test_the_setting_is_frozen_once_published(db: Database, settings: Settings) -> None:
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None)
    assert not (await service.get(issue_id)).tracking
    await service.update(issue_id, CONTENT, track=True)
    assert (await service.get(issue_id)).tracking
    await service.publish(issue_id)
    async with db.connection() as conn:
        tracked, links = await tracking.tracking_of(conn, issue_id)
        assert tracked
        assert links == [
            "https://example.org/report?a=1&b=2",
            "https://blog.example.org/",
        ]
        await tracking.set_tracking(conn, issue_id, on=False)  # published: changes nothing
        assert (await tracking.tracking_of(conn, issue_id))[0]
    untracked = await service.create_draft(CONTENT, None)
    await service.publish(untracked)
    async with db.connection() as conn:
        await tracking.set_tracking(conn, untracked, on=True)
        assert await tracking.tracking_of(conn, untracked) == (False, None)


# -- the admin -----------------------------------------------------------------------------------


async def test_the_editor_turns_it_on_and_the_issue_page_shows_the_results(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    form = await admin_client.get("/admin/issues/new")
    assert 'name="tracking"' in form.text
    assert "checked" not in form.text.split('name="tracking"')[1][:40]
    issue_id = await create(
        admin_client,
        markdown="[A link](https://example.org/x)",
        tracking="on",
        tracking_field="1",
    )
    edit = await admin_client.get(f"/admin/issues/{issue_id}/edit")
    assert re.search(r'name="tracking" value="on"[^>]*checked', edit.text)
    page = await admin_client.get(f"/admin/issues/{issue_id}")
    assert 'id="engagement"' in page.text
    assert "once it is published" in page.text
    # Saved without the box ticked: off again. A post without the field leaves it alone.
    data = {
        "csrf_token": await token(admin_client, f"/admin/issues/{issue_id}/edit"),
        "title": "Weekly #1",
        "format": "markdown",
        "markdown": "[A link](https://example.org/x)",
    }
    assert (await admin_client.post(f"/admin/issues/{issue_id}/edit", data=data)).status_code == 303
    assert (await IssueService(db, settings).get(issue_id)).tracking
    data["tracking_field"] = "1"
    assert (await admin_client.post(f"/admin/issues/{issue_id}/edit", data=data)).status_code == 303
    assert not (await IssueService(db, settings).get(issue_id)).tracking
    assert 'id="engagement"' not in (await admin_client.get(f"/admin/issues/{issue_id}")).text

    await add_subscribers(db, 1, prefix="page")
    service = IssueService(db, settings)
    await service.update(
        issue_id, IssueContent.parse(title="W", markdown="[A](https://example.org/x)"), track=True
    )
    await service.publish(issue_id)
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    await age_sends(db)
    prefix = clicks_of(provider.messages[0])[0][0]
    await admin_client.get(f"{prefix}/0", headers=PERSON)
    page = await admin_client.get(f"/admin/issues/{issue_id}")
    section = page.text.split('id="engagement"')[1].split("</section>")[0]
    assert "https://example.org/x" in section
    assert re.search(r'data-measure="clickers"><td>[^<]*</td><td class="num">1</td>', section)


@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_a_click_never_fails_on_a_deleted_delivery(
    client: httpx.AsyncClient, db: Database, settings: Settings, method: str
) -> None:
    _, messages = await send(db, settings, 1)
    prefix = clicks_of(messages[0])[0][0]
    async with db.connection() as conn:
        await conn.execute("DELETE FROM deliveries")
    answer = await client.request(method, f"{prefix}/0")
    assert answer.status_code == 302  # the link still works; nothing is counted
    assert await fetchval(db, "SELECT count(*) FROM engagement_clicks") == 0


async def test_the_reader_turns_tracking_off_and_on_in_the_preference_centre(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    [reader] = await add_subscribers(db, 1, prefix="prefs")
    url = f"/preferences?token={make_token(settings, reader)}"
    page, csrf = await open_page(client, url)
    assert re.search(r'name="tracking" value="on"\s*checked', page.text), "on by default"
    posted = await client.post(
        url.replace("/preferences?", "/preferences/tracking?"),
        data={"csrf_token": csrf},
        headers=BROWSER,
    )
    assert posted.status_code == 303
    async with db.connection() as conn:
        assert await tracking.opted_out(conn, [reader]) == {reader}
    page, csrf = await open_page(client, url)
    assert not re.search(r'name="tracking" value="on"\s*checked', page.text)
    assert "no tracking image" in page.text  # the flash
    data = await client.post(
        url.replace("/preferences?", "/preferences/data?"),
        data={"csrf_token": csrf},
        headers=BROWSER,
    )
    assert data.json()["engagement_tracking"] is False
    # Without the CSRF token: refused, nothing changes.
    refused = await client.post(
        url.replace("/preferences?", "/preferences/tracking?"),
        data={"tracking": "on"},
        headers=BROWSER,
    )
    assert refused.status_code == 403
    async with db.connection() as conn:
        assert await tracking.opted_out(conn, [reader]) == {reader}
    await client.post(
        url.replace("/preferences?", "/preferences/tracking?"),
        data={"csrf_token": csrf, "tracking": "on"},
        headers=BROWSER,
    )
    async with db.connection() as conn:
        assert await tracking.opted_out(conn, [reader]) == set()
    # A forged token changes nothing and says so.
    forged = await client.post(
        "/preferences/tracking?token=garbage", data={"csrf_token": csrf}, headers=BROWSER
    )
    assert forged.status_code == 400


async def test_the_reader_s_data_download_holds_what_tracking_recorded(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    issue_id, messages = await send(db, settings, 1)
    await age_sends(db)
    message = messages[0]
    await client.get(pixel_of(message), headers=PERSON)
    prefix = clicks_of(message)[0][0]
    for _ in range(2):
        await client.get(f"{prefix}/1", headers=PERSON)
    reader = await fetchval(
        db,
        "SELECT subscriber_id FROM deliveries WHERE issue_id = $1 AND recipient = $2",
        issue_id,
        message.recipient,
    )
    assert isinstance(reader, uuid.UUID)
    data = await PreferenceCentre(db, settings).data(make_token(settings, reader))
    assert data["engagement_tracking"] is True
    [row] = data["engagement"]
    assert (row["issue"], row["opened"], row["clicks"]) == ("Tracked news", True, 2)


async def test_the_api_sets_and_shows_tracking_until_publishing(
    db: Database, settings: Settings
) -> None:
    keys = await make_keys(db, settings)
    draft = {"title": "API issue", "markdown": "[A](https://example.org/a)"}
    async with api_client(new_app(settings, db)) as api:
        created = await api.post("/api/v1/issues", json=draft, headers=keys.editor_write)
        assert created.status_code == 201, created.text
        assert created.json()["tracking"] is False, "off by default"
        url = f"/api/v1/issues/{created.json()['id']}"
        on = await api.put(url, json={**draft, "tracking": True}, headers=keys.editor_write)
        assert on.json()["tracking"] is True
        kept = await api.put(url, json=draft, headers=keys.editor_write)  # left out: unchanged
        assert kept.json()["tracking"] is True
        for bad in ("yes", 1, None, [True]):
            refused = await api.put(url, json={**draft, "tracking": bad}, headers=keys.editor_write)
            assert refused.status_code == (200 if bad is None else 400), (bad, refused.text)
        assert (await api.get(url, headers=keys.editor_read)).json()["tracking"] is True
        published = await api.post(f"{url}/publish", headers=keys.editor_write)
        assert published.status_code == 202, published.text
        frozen = await api.put(url, json={**draft, "tracking": False}, headers=keys.editor_write)
        assert frozen.status_code == 409
        assert (await api.get(url, headers=keys.editor_read)).json()["tracking"] is True
        tracked = await api.post(
            "/api/v1/issues", json={**draft, "tracking": True}, headers=keys.editor_write
        )
        assert tracked.json()["tracking"] is True
