"""'View in browser': each issue email links to its reader's signed web copy (GET /v/{token})."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from pydantic import SecretStr

from herald.core.config import Settings
from herald.core.db import Database
from herald.email.message import EmailMessage
from herald.issues.domain import IssueContent
from herald.issues.proofs import Proofs
from herald.issues.service import IssueService
from herald.issues.webcopy import ROBOTS_META, make_token
from tests.support.newsletters import add_subscribers, drain, issue_worker
from tests.support.queue import RecordingProvider

CONTENT = IssueContent.parse(
    title="Issue 7: <the> news",
    markdown="Dear {{ subscriber.name }},\n\n- one\n- two\n\n> quoted",
)
VIEW_HTML = re.compile(r'<a href="(http://herald\.test/v/[^"]+)"[^>]*>View in browser</a>')
VIEW_TEXT = re.compile(r"^View in your browser: (\S+)$", re.M)
NOT_FOUND = "does not exist (any more)"


async def send_issue(
    db: Database, settings: Settings, count: int = 2
) -> tuple[uuid.UUID, list[uuid.UUID], list[EmailMessage]]:
    subscribers = await add_subscribers(db, count)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None)
    await service.publish(issue_id)
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    messages = sorted(provider.messages, key=lambda m: m.recipient)
    assert len(messages) == count
    return issue_id, subscribers, messages


def view_links(message: EmailMessage) -> tuple[str, str]:
    html = VIEW_HTML.search(message.html_body)
    text = VIEW_TEXT.search(message.text_body)
    assert html, "the HTML part links to the web copy"
    assert text, "the text part's footer links to the web copy"
    return html.group(1), text.group(1)


def path(url: str) -> str:
    return url.removeprefix("http://herald.test")


async def test_the_link_in_both_parts_opens_exactly_that_email(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    _, _, messages = await send_issue(db, settings)
    first, second = (view_links(m) for m in messages)
    assert first[0] == first[1], "the same link in the HTML and the text part"
    assert first[0] != second[0], "one link per reader"
    assert len(path(first[0])) < 80, "a compact token"
    for message, (url, _) in zip(messages, (first, second), strict=True):
        response = await client.get(path(url))
        assert response.status_code == 200, response.text
        assert response.text.replace(ROBOTS_META, "", 1) == message.html_body
        assert ROBOTS_META in response.text.split("</head>")[0]
    assert "Dear Reader 0," in (await client.get(path(first[0]))).text


async def test_the_copy_is_private_unindexed_and_runs_no_script(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    _, _, messages = await send_issue(db, settings, 1)
    response = await client.get(path(view_links(messages[0])[0]))
    headers = response.headers
    assert headers["x-robots-tag"] == "noindex, nofollow, noarchive"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"].startswith("private, max-age=")
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp
    assert "script-src" not in csp, "nothing allows a script"
    assert "style-src 'unsafe-inline'" in csp
    assert "sandbox" in csp
    assert "nonce-" not in csp, "its own policy, not Herald's pages' one"


async def test_it_still_works_after_the_reader_unsubscribed(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    _, subscribers, messages = await send_issue(db, settings, 1)
    url, _ = view_links(messages[0])
    page = await client.get(path(url))
    unsubscribe = re.search(
        r'<a href="http://herald\.test(/unsubscribe/one-click\?token=[^"]+)"', page.text
    )
    assert unsubscribe, "a working unsubscribe link"
    confirm = await client.get(unsubscribe.group(1).replace("&amp;", "&"))
    assert confirm.status_code == 200
    posted = await client.post(unsubscribe.group(1).replace("&amp;", "&"))
    assert posted.status_code == 200
    async with db.connection() as conn:
        # The link names the issue: one click leaves the issue's list (the default one).
        status = await conn.fetchval(
            "SELECT m.status FROM list_memberships m JOIN lists l ON l.id = m.list_id"
            " WHERE m.subscriber_id = $1 AND l.slug = 'default'",
            subscribers[0],
        )
    assert status == "unsubscribed"
    again = await client.get(path(url))
    assert again.status_code == 200
    assert again.text.replace(ROBOTS_META, "", 1) == messages[0].html_body


async def test_a_deleted_reader_a_draft_and_a_tampered_or_foreign_token_are_the_same_404(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    issue_id, subscribers, messages = await send_issue(db, settings)
    good = path(view_links(messages[0])[0])
    other = path(view_links(messages[1])[0])
    draft_id = await IssueService(db, settings).create_draft(CONTENT, None)
    ident, signature = good.removeprefix("/v/").split(".")
    other_ident, other_signature = other.removeprefix("/v/").split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    refused = {
        "tampered signature": f"/v/{ident}.{flipped}",
        "another reader's signature": f"/v/{ident}.{other_signature}",
        "another reader's ids": f"/v/{other_ident}.{signature}",
        "a draft": f"/v/{make_token(settings, draft_id, subscribers[0])}",
        "another issue": f"/v/{make_token(settings, uuid.uuid4(), subscribers[0])}",
        "a key of another install": "/v/"
        + make_token(
            settings.model_copy(update={"secret_key": SecretStr("t" * 48)}),
            issue_id,
            subscribers[0],
        ),
    }
    async with db.connection() as conn:
        await conn.execute("DELETE FROM deliveries WHERE subscriber_id = $1", subscribers[1])
        await conn.execute("DELETE FROM subscriptions WHERE id = $1", subscribers[1])
    refused["a deleted reader"] = other
    bodies = set()
    for case, url in refused.items():
        response = await client.get(url, headers={"accept": "text/html"})
        assert response.status_code == 404, case
        bodies.add(re.sub(r"[0-9a-f]{32}|[0-9a-f-]{36}", "", response.text))
    assert len(bodies) == 1, "no oracle: every refusal is the same page"
    assert NOT_FOUND in bodies.pop()
    assert (await client.get(good)).status_code == 200


@pytest.mark.parametrize(
    "token",
    ["", "x", "a.b", "é" * 66, "A" * 43 + "." + "é" * 22, "A" * 43 + "." + "A" * 22, "A" * 5000],
)
async def test_a_malformed_token_is_a_404_never_a_500(
    client: httpx.AsyncClient, token: str
) -> None:
    response = await client.get(f"/v/{token}")
    assert response.status_code == 404


async def test_a_draft_is_a_404_until_it_goes_out(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    (subscriber,) = await add_subscribers(db, 1)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None)
    url = f"/v/{make_token(settings, issue_id, subscriber)}"
    assert (await client.get(url)).status_code == 404
    await service.publish(issue_id)  # publishing: the first emails may be out
    assert (await client.get(url)).status_code == 200


async def test_a_test_send_links_the_admins_preview_not_a_public_copy(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    issue_id = await IssueService(db, settings).create_draft(CONTENT, None)
    await Proofs(db, settings).send(issue_id, ["editor@example.org"], name="Ed")
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    [message] = provider.messages
    preview = f"http://herald.test/admin/issues/{issue_id}/preview"
    assert f'href="{preview}"' in message.html_body
    assert f"View in your browser: {preview}\n" in message.text_body
    assert "/v/" not in message.html_body
    anonymous = await client.get(path(preview))
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login"
