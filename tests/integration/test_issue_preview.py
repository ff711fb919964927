"""Issue 14: an issue's own preheader (item 1) from the editor to the inbox and the web copy,
and the editor's preview (item 5): light and dark, HTML and text, the sample "View in
browser" link, and a test send that is the email the preview shows."""

from __future__ import annotations

import re
import uuid

import httpx

from herald.core.config import Settings
from herald.core.db import Database
from herald.issues.domain import IssueContent
from herald.issues.proofs import Proofs
from herald.issues.service import IssueService
from herald.issues.views import IssueViews
from tests.integration.test_issue_pages import act, create, fetchval, token
from tests.support.newsletters import add_subscribers, drain, issue_worker
from tests.support.queue import RecordingProvider

DARK_QUERY = re.compile(r"@media\s*\(\s*prefers-color-scheme\s*:\s*dark\s*\)")
VIEW_LINK = re.compile(r'<a href="([^"]+)"[^>]*>View in browser</a>')
FIELDS = {"title": "Live", "format": "markdown", "markdown": "Hi **{{ subscriber.name }}**"}


def hidden_preheader(html: str) -> str:
    hidden = html[html.index("<div style='display:none;") :]
    return hidden[hidden.index(">") + 1 : hidden.index("&zwnj;")]


async def stored_preheader(db: Database, issue_id: uuid.UUID) -> object:
    return await fetchval(db, "SELECT preheader FROM newsletter_issues WHERE id = $1", issue_id)


async def test_a_preheader_set_in_the_editor_is_stored_shown_sent_and_in_the_web_copy(
    admin_client: httpx.AsyncClient, client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    issue_id = await create(admin_client, preheader="  Five links\n worth  your time ")
    assert await stored_preheader(db, issue_id) == "Five links worth your time"
    page = await admin_client.get(f"/admin/issues/{issue_id}")
    assert re.search(
        r'id="issue-preheader">Preheader: <q>Five links worth your time</q>', page.text
    )
    assert re.search(r'id="html-size">HTML: [0-9.]+ KB', page.text)
    edit = await admin_client.get(f"/admin/issues/{issue_id}/edit")
    assert 'name="preheader" type="text" maxlength="150" value="Five links worth your time"' in (
        edit.text
    )

    await add_subscribers(db, 1)
    await act(admin_client, issue_id, "publish")
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    [message] = provider.messages
    assert hidden_preheader(message.html_body) == "Five links worth your time"
    view = VIEW_LINK.search(message.html_body)
    assert view
    copy = await client.get(view.group(1).removeprefix("http://herald.test"))
    assert copy.status_code == 200
    assert hidden_preheader(copy.text) == "Five links worth your time"


async def test_the_preheader_is_optional_and_a_long_one_is_a_400_naming_it(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    issue_id = await create(admin_client)  # the contract's fields alone
    assert await stored_preheader(db, issue_id) == ""
    data = {
        "csrf_token": await token(admin_client, "/admin/issues/new"),
        **FIELDS,
        "preheader": "x" * 151,
    }
    refused = await admin_client.post("/admin/issues/new", data=data)
    assert refused.status_code == 400
    assert "preheader is too long: at most 150 characters (151 given)" in refused.text
    assert 'value="' + "x" * 151 + '"' in refused.text  # what was typed, to shorten
    assert await fetchval(db, "SELECT count(*) FROM newsletter_issues") == 1

    data["csrf_token"] = await token(admin_client, f"/admin/issues/{issue_id}/edit")
    data["preheader"] = "Set later"
    saved = await admin_client.post(f"/admin/issues/{issue_id}/edit", data=data)
    assert saved.status_code == 303
    assert await stored_preheader(db, issue_id) == "Set later"
    data["preheader"] = ""
    await admin_client.post(f"/admin/issues/{issue_id}/edit", data=data)
    assert await stored_preheader(db, issue_id) == ""


async def preview(
    client: httpx.AsyncClient, query: str = "format=html", **fields: str
) -> httpx.Response:
    data = {"csrf_token": await token(client, "/admin/issues/new"), **FIELDS, **fields}
    return await client.post(f"/admin/issues/preview?{query}", data=data)


async def test_the_dark_preview_applies_the_layout_s_dark_rules_unconditionally(
    admin_client: httpx.AsyncClient,
) -> None:
    light = await preview(admin_client, scheme="light")
    dark = await preview(admin_client, scheme="dark")
    system = await preview(admin_client)
    assert light.status_code == dark.status_code == system.status_code == 200
    assert DARK_QUERY.search(system.text)  # the email as sent: the reader's system decides
    assert not DARK_QUERY.search(dark.text)
    assert re.search(r"@media all\s*\{", dark.text)
    assert "background-color:#111318" in dark.text  # the layout's dark page, now always on
    assert not DARK_QUERY.search(light.text)
    assert "@media not all" in light.text
    # Only the preview: the saved issue's preview does it too, a sent email never.
    issue_id = await create(admin_client)
    saved = await admin_client.get(f"/admin/issues/{issue_id}/preview?format=html&scheme=dark")
    assert saved.status_code == 200
    assert not DARK_QUERY.search(saved.text)
    assert "@media all" in saved.text
    wrong = await admin_client.get(f"/admin/issues/{issue_id}/preview?scheme=sepia")
    assert wrong.status_code == 400
    assert (await preview(admin_client, scheme="sepia")).status_code == 400


async def test_the_preview_shows_the_text_part_and_the_view_link_readers_get(
    admin_client: httpx.AsyncClient,
) -> None:
    text = await preview(admin_client, part="text", scheme="dark")
    assert text.status_code == 200
    assert "sandbox" in text.headers["content-security-policy"]
    part = re.search(r'<pre id="text-part">(.*)</pre>', text.text, re.S)
    assert part
    assert part.group(1).startswith("Hi Sample Subscriber")
    assert "View in your browser: http://herald.test/v/sample" in part.group(1)
    assert "background:#111318" in text.text

    html = await preview(admin_client)
    view = VIEW_LINK.search(html.text)
    assert view
    assert view.group(1) == "http://herald.test/v/sample"  # what readers get: a /v/ link
    # Editing a saved issue: the links its test send has.
    issue_id = await create(admin_client)
    edited = await preview(admin_client, f"format=html&issue_id={issue_id}")
    view = VIEW_LINK.search(edited.text)
    assert view
    assert view.group(1) == f"http://herald.test/admin/issues/{issue_id}/preview"

    shown = await preview(admin_client, "format=json", preheader=" Own  line ")
    body = shown.json()
    assert body["preheader"] == "Own line"
    assert body["title"] == "Live"
    derived = (await preview(admin_client, "format=json")).json()
    assert derived["preheader"] == "Hi Sample Subscriber"  # the text's first words, no footer
    assert (await preview(admin_client, "format=json", preheader="y" * 151)).status_code == 400


async def test_a_test_send_is_the_email_the_preview_shows(db: Database, settings: Settings) -> None:
    content = IssueContent.parse(
        title="Weekly",
        markdown="Dear {{ subscriber.name }} <{{ subscriber.email }}>\n\n- one\n- two",
        preheader="What is new",
    )
    issue_id = await IssueService(db, settings).create_draft(content, None)
    await Proofs(db, settings).send(issue_id, ["editor@example.org"], name="Ed")
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    [message] = provider.messages
    shown = await IssueViews(db, settings).preview(issue_id, name="Ed", email="editor@example.org")
    assert message.html_body == shown.html
    assert message.text_body == shown.text
    assert message.subject == "[TEST] Weekly"
    assert hidden_preheader(message.html_body) == "What is new"
    view = VIEW_LINK.search(message.html_body)
    assert view
    assert view.group(1) == f"http://herald.test/admin/issues/{issue_id}/preview"
