"""Issue 11 item 5: the issue list's results, the editor's live preview, multi-address test
sends, schedules in a named time zone, the publish confirmation, recipient outcomes."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import httpx
import pytest

from herald.admin import issues as admin_issues
from herald.core.config import Settings
from herald.core.db import Database
from herald.issues import sandbox
from tests.integration.test_issue_pages import act, create, fetchval, flashes, token
from tests.support.newsletters import add_subscribers, drain, issue_worker, newsletter_form
from tests.support.queue import RecordingProvider

FIELDS = {"title": "Live", "format": "markdown", "markdown": "Hi **{{ subscriber.name }}**"}


async def preview(client: httpx.AsyncClient, fmt: str = "json", **fields: str) -> httpx.Response:
    data = {"csrf_token": await token(client, "/admin/issues/new"), **FIELDS, **fields}
    return await client.post(
        f"/admin/issues/preview?format={fmt}", data=data, headers={"Accept": "application/json"}
    )


async def test_the_live_preview_renders_unsaved_content_for_the_sample_subscriber(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    shown = await preview(admin_client)
    assert shown.status_code == 200, shown.text
    body = shown.json()
    assert body["text"].startswith("Hi Sample Subscriber")
    assert body["clipped"] is False
    assert 0 < body["html_bytes"] < body["clip_bytes"] == 102 * 1024

    framed = await admin_client.post(
        "/admin/issues/preview?format=html",
        data={"csrf_token": await token(admin_client, "/admin/issues/new"), **FIELDS},
    )
    assert framed.status_code == 200
    assert re.search(r"<strong[^>]*>Sample Subscriber</strong>", framed.text)
    policy = framed.headers["content-security-policy"]
    assert "sandbox" in policy
    assert "frame-ancestors 'self'" in policy
    assert "script-src" not in policy
    assert framed.headers["x-frame-options"] == "SAMEORIGIN"
    # The editor page may frame it; nothing was saved.
    editor = await admin_client.get("/admin/issues/new")
    assert "frame-src 'self'" in editor.headers["content-security-policy"]
    assert 'name="preview-frame"' in editor.text
    assert 'sandbox="allow-popups allow-popups-to-escape-sandbox"' in editor.text
    assert await fetchval(db, "SELECT count(*) FROM newsletter_issues") == 0

    big = await preview(admin_client, format="html", html_content="<p>" + "x" * 110_000 + "</p>")
    assert big.json()["clipped"] is True


async def test_a_template_error_is_a_400_naming_it(admin_client: httpx.AsyncClient) -> None:
    refused = await preview(admin_client, markdown="Hi {{ subscriber.name ")
    assert refused.status_code == 400
    assert "template error on line 1" in refused.json()["message"]
    framed = await admin_client.post(
        "/admin/issues/preview?format=html",
        data={
            "csrf_token": await token(admin_client, "/admin/issues/new"),
            **FIELDS,
            "markdown": "{{ nope.nothing.here }}",
        },
    )
    assert framed.status_code == 400
    assert "cannot be rendered" in framed.text
    assert "sandbox" in framed.headers["content-security-policy"]
    # Untitled drafts preview; an empty body says what is missing.
    assert (await preview(admin_client, title="")).status_code == 200
    empty = await preview(admin_client, markdown="  ")
    assert empty.status_code == 400
    assert "must not be empty" in empty.json()["message"]
    assert (await preview(admin_client, fmt="pdf")).status_code == 400


async def test_the_preview_is_time_boxed(
    admin_client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox, "RENDER_SECONDS", 0.2)
    from herald.issues import rendering

    monkeypatch.setattr(rendering, "RENDER_SECONDS", 0.2)
    slow = "{% for a in range(10000) %}{% for b in range(10000) %}.{% endfor %}{% endfor %}"
    refused = await preview(admin_client, markdown=slow)
    assert refused.status_code == 400
    assert refused.json()["message"]  # a limit of the sandbox or the time box, named


async def test_huge_previews_are_refused(admin_client: httpx.AsyncClient) -> None:
    too_big = await preview(admin_client, markdown="x" * (3 * 1024 * 1024))
    assert too_big.status_code == 413
    just_under = await preview(
        admin_client, format="html", html_content="y" * (2 * 1024 * 1024 - 200)
    )
    assert just_under.status_code in {200, 400}


async def test_a_test_send_to_several_addresses(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    issue_id = await create(admin_client)
    page = await act(
        admin_client, issue_id, "test", email="a@example.com,\nb@example.com; a@example.com"
    )
    assert flashes(page) == [
        ("flash", "2 test emails are on their way: a@example.com, b@example.com.")
    ]
    assert (
        await fetchval(db, "SELECT string_agg(recipient, ',' ORDER BY recipient) FROM deliveries")
        == "a@example.com,b@example.com"
    )

    data = {"csrf_token": await token(admin_client, f"/admin/issues/{issue_id}")}
    for raw, named in (
        ("ok@example.com, wrong@", "&#39;wrong@&#39; is not a valid email address"),
        (",".join(f"r{n}@example.com" for n in range(11)), "at most 10 addresses"),
        (" , ", "enter at least one email address"),
    ):
        refused = await admin_client.post(
            f"/admin/issues/{issue_id}/test", data={**data, "email": raw}
        )
        assert refused.status_code == 400
        assert named in refused.text
    assert await fetchval(db, "SELECT count(*) FROM deliveries") == 2  # all or none


@pytest.mark.parametrize(
    ("local", "utc"),
    [("2099-01-15T09:30", "2099-01-15 08:30"), ("2099-07-15T09:30", "2099-07-15 07:30")],
)
async def test_a_schedule_in_a_named_time_zone_round_trips_across_dst(
    admin_client: httpx.AsyncClient, db: Database, local: str, utc: str
) -> None:
    issue_id = await create(admin_client)
    page = await act(
        admin_client, issue_id, "schedule", scheduled_at=local, timezone="Europe/Paris"
    )
    offset = "+01:00" if local[5:7] == "01" else "+02:00"
    day, clock = local.split("T")
    assert flashes(page) == [
        (
            "flash",
            f"The issue is scheduled for {day} {clock} Europe/Paris (UTC{offset}; {utc} UTC).",
        )
    ]
    stored = await fetchval(db, "SELECT scheduled_at FROM newsletter_issues")
    assert stored == datetime.fromisoformat(utc).replace(tzinfo=UTC)
    # Shown back in the zone chosen (remembered by the browser), the form prefilled.
    assert f">{day} {clock} Europe/Paris</time> ({utc} UTC)" in page.text
    assert f'value="{local}"' in page.text
    assert "<option selected>Europe/Paris</option>" in page.text
    listing = await admin_client.get("/admin/issues")
    assert f">{day} {clock}</time>" in listing.text


@pytest.mark.parametrize(
    ("scheduled_at", "zone", "message"),
    [
        ("2099-03-29T02:30", "Europe/Paris", "does not exist in Europe/Paris"),
        ("2099-03-29T09:30", "Mars/Olympus_Mons", "unknown time zone &#39;Mars/Olympus_Mons&#39;"),
    ],
)
async def test_bad_zones_and_skipped_times_are_refused(
    admin_client: httpx.AsyncClient, scheduled_at: str, zone: str, message: str
) -> None:
    issue_id = await create(admin_client)
    page = await act(admin_client, issue_id, "schedule", scheduled_at=scheduled_at, timezone=zone)
    [(level, shown)] = flashes(page)
    assert level == "error"
    assert message.replace("&#39;", "'") in shown


async def test_publishing_asks_first_and_states_the_recipient_count(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    await add_subscribers(db, 3)
    await add_subscribers(db, 2, status="pending_confirmation", prefix="pending")
    issue_id = await create(admin_client)
    issue_page = await admin_client.get(f"/admin/issues/{issue_id}")
    assert f'href="/admin/issues/{issue_id}/publish" id="publish"' in issue_page.text
    confirm = await admin_client.get(f"/admin/issues/{issue_id}/publish")
    assert confirm.status_code == 200
    assert re.search(r"It goes to <strong>3</strong> confirmed subscribers", confirm.text)
    assert "Publish to 3 subscribers" in confirm.text
    assert await fetchval(db, "SELECT status FROM newsletter_issues") == "draft"

    page = await act(admin_client, issue_id, "publish")
    assert flashes(page)[0][0] == "flash"
    again = await admin_client.get(f"/admin/issues/{issue_id}/publish")
    assert again.status_code == 303  # published: back to the issue page, with why

    # The contract's one-step form is unchanged.
    form = await newsletter_form(admin_client)
    response = await admin_client.post(
        "/admin/newsletters", data={**form, "title": "Direct", "text_content": "Hello"}
    )
    assert (response.status_code, response.headers["location"]) == (303, "/admin/newsletters")
    shown = await admin_client.get("/admin/newsletters")
    assert "The newsletter issue has been accepted - emails will go out shortly." in shown.text


async def test_the_list_shows_results_and_the_issue_page_pages_outcomes(
    admin_client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await add_subscribers(db, 7)
    draft_id = await create(admin_client, title="Still a draft")
    issue_id = await create(admin_client, title="Sent one")
    await act(admin_client, issue_id, "publish")
    await drain(issue_worker(db, settings, RecordingProvider()))
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE deliveries SET status = 'failed', last_error = 'mailbox full'"
            " WHERE recipient IN ('reader1@example.com', 'reader2@example.com')"
        )
        await conn.execute(
            "UPDATE deliveries SET status = 'suppressed' WHERE recipient = 'reader3@example.com'"
        )
    listing = await admin_client.get("/admin/issues")
    row = listing.text[listing.text.index(f'href="/admin/issues/{issue_id}"') :]
    row = row[: row.index("</tr>")]
    cells = re.findall(r'<td class="num[^"]*">(?:<a [^>]*>)?([^<]*)', row)
    assert cells[:4] == ["7", "4", "2", "1"]  # recipients, sent, failed, suppressed
    # Then the bounce and complaint rates, nothing reported yet.
    assert re.findall(r'<span class="rate rate-ok"[^>]*>([^<]*)', row) == ["0 %", "0 %"]
    draft_row = listing.text[listing.text.index(f'href="/admin/issues/{draft_id}"') :]
    assert draft_row[: draft_row.index("</tr>")].count("—") >= 4

    # Recipients, newest first, filtered and keyset-paged (no OFFSET).
    monkeypatch.setattr(admin_issues, "DELIVERY_ROWS", 3)
    seen: list[str] = []
    pages = 0
    url = f"/admin/issues/{issue_id}?status=sent"
    while url:
        page = await admin_client.get(url)
        pages += 1
        seen += re.findall(r">(reader\d+@example.com)</a>", page.text)
        found = re.search(r'id="next-recipients" href="([^"]+)"', page.text)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert sorted(seen) == sorted(f"reader{n}@example.com" for n in (0, 4, 5, 6))
    assert pages == 2
    everyone = await admin_client.get(f"/admin/issues/{issue_id}")
    assert len(re.findall(r">(reader\d+@example.com)</a>", everyone.text)) == 3
    failed = await admin_client.get(f"/admin/issues/{issue_id}?status=failed")
    assert sorted(re.findall(r">(reader\d+@example.com)</a>", failed.text)) == [
        "reader1@example.com",
        "reader2@example.com",
    ]
    assert '<tr><td>mailbox full</td><td class="num">2</td></tr>' in failed.text
    bad = await admin_client.get(f"/admin/issues/{issue_id}?before=abc")
    assert bad.status_code in {400, 422}


async def test_the_editor_posts_its_send_to_lists_as_repeated_fields(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    async with db.connection() as conn:
        await conn.execute("INSERT INTO lists (slug, name) VALUES ('offers', 'Offers')")
    base = {
        "csrf_token": await token(admin_client, "/admin/issues/new"),
        "title": "Targeted",
        "format": "markdown",
        "markdown": "Hi",
        "send_to": "1",
    }
    slugs = (
        "SELECT array_agg(l.slug ORDER BY l.slug) FROM issue_lists il"
        " JOIN lists l ON l.id = il.list_id WHERE il.issue_id = $1"
    )
    created = await admin_client.post(
        "/admin/issues/new", data={**base, "lists": ["offers", "default"]}
    )
    assert created.status_code == 303, created.text
    issue_id = uuid.UUID(created.headers["location"].rsplit("/", 1)[-1])
    assert await fetchval(db, slugs, issue_id) == ["default", "offers"]

    # A post without the fieldset (a script of the previous release) keeps the target.
    fields = {k: v for k, v in base.items() if k != "send_to"}
    kept = await admin_client.post(f"/admin/issues/{issue_id}/edit", data=fields)
    assert kept.status_code == 303, kept.text
    assert await fetchval(db, slugs, issue_id) == ["default", "offers"]

    # No list checked, or far more than an issue may have: a 400 naming the field.
    for chosen, message in (([], "at least one list"), ([f"l{n}" for n in range(400)], "at most")):
        refused = await admin_client.post(
            f"/admin/issues/{issue_id}/edit", data={**base, "lists": chosen}
        )
        assert refused.status_code == 400, refused.text
        assert message in refused.text
        assert await fetchval(db, slugs, issue_id) == ["default", "offers"]
