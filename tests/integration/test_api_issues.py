"""/api/v1/issues: drafts, preview, test send, publish, schedule and cancel, retry failed,
stats and deliveries — the admin issue pages' services behind JSON."""

from __future__ import annotations

import threading
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import ValidationError
from herald.issues.service import IssueService
from tests.support.api import Keys, api_client, make_keys, new_app
from tests.support.newsletters import add_subscribers

URL = "/api/v1/issues"
DRAFT = {"title": "Weekly #1", "markdown": "Hello **{{ subscriber.name }}**", "preheader": "Hi"}


@pytest.fixture
async def keys(db: Database, settings: Settings) -> Keys:
    return await make_keys(db, settings)


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(new_app(settings, db)) as c:
        yield c


async def create(client: httpx.AsyncClient, keys: Keys, **changes: Any) -> dict[str, Any]:
    response = await client.post(URL, json={**DRAFT, **changes}, headers=keys.editor_write)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def test_a_draft_is_created_read_replaced_and_previewed(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    issue = await create(client, keys)
    assert issue["status"] == "draft"
    assert issue["preheader"] == "Hi"
    assert "<strong>{{ subscriber.name }}</strong>" in issue["html"]
    url = f"{URL}/{issue['id']}"
    assert (await client.get(url, headers=keys.editor_read)).json() == issue
    replaced = await client.put(
        url, json={"title": "Weekly #1b", "text_content": "Plain"}, headers=keys.editor_write
    )
    assert replaced.status_code == 200, replaced.text
    assert replaced.json()["title"] == "Weekly #1b"
    assert replaced.json()["markdown"] is None
    preview = (await client.get(f"{url}/preview", headers=keys.editor_read)).json()
    assert preview["title"] == "Weekly #1b"
    assert preview["html"].startswith("<!doctype html>")
    assert "Plain" in preview["text"]
    assert preview["html_bytes"] == len(preview["html"].encode())


async def test_bad_content_is_a_400_naming_the_field(client: httpx.AsyncClient, keys: Keys) -> None:
    for payload, field in (
        ({"title": ""}, "title"),
        ({"title": "T", "markdown": "{{ broken"}, None),
        ({"title": "T", "text_content": "x", "preheader": "p" * 151}, "preheader"),
        ({"title": "T", "text_content": "x", "colour": "red"}, "colour"),
    ):
        response = await client.post(URL, json=payload, headers=keys.editor_write)
        assert response.status_code == 400, (payload, response.text)
        if field:
            assert field in [e["field"] for e in response.json()["errors"]]


async def test_a_150_kb_issue_fits_the_api_body_limit(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    body = "<p>" + "x" * 150_000 + "</p>"
    await create(client, keys, markdown=None, html_content=body)


async def test_publish_stats_deliveries_and_retry(
    client: httpx.AsyncClient, keys: Keys, db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 5)
    issue = await create(client, keys)
    url = f"{URL}/{issue['id']}"
    headers = {**keys.editor_write, "Idempotency-Key": "publish-1"}
    published = await client.post(f"{url}/publish", headers=headers)
    assert published.status_code == 202, published.text
    assert published.json()["status"] == "publishing"
    again = await client.post(f"{url}/publish", headers=headers)  # a retry: replayed
    assert again.status_code == 202
    assert again.headers["idempotent-replayed"] == "true"
    twice = await client.post(f"{url}/publish", headers=keys.editor_write)  # a new request
    assert twice.status_code == 409
    assert (await client.put(url, json=DRAFT, headers=keys.editor_write)).status_code == 409
    service = IssueService(db, settings)
    while await service.fan_out_step() is not None:
        pass
    stats = (await client.get(f"{url}/stats", headers=keys.editor_read)).json()
    assert stats["recipients"] == 5
    assert stats["queued"] == 5
    seen: list[int] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (
            await client.get(f"{url}/deliveries", params=params, headers=keys.editor_read)
        ).json()
        seen.extend(d["id"] for d in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) == 5
    assert seen == sorted(seen, reverse=True)
    failed = await client.get(
        f"{url}/deliveries", params={"status": "failed"}, headers=keys.editor_read
    )
    assert failed.json() == {"items": [], "next_cursor": None}
    mixed = await client.get(
        f"{url}/deliveries",
        params={
            "status": "failed",
            "cursor": page_cursor_of(
                await client.get(f"{url}/deliveries", params={"limit": 1}, headers=keys.editor_read)
            ),
        },
        headers=keys.editor_read,
    )
    assert mixed.status_code == 400  # a cursor of the unfiltered list
    retried = await client.post(f"{url}/retry-failed", headers=keys.editor_write)
    assert retried.json() == {"retried": 0}


def page_cursor_of(response: httpx.Response) -> str:
    cursor: str = response.json()["next_cursor"]
    assert cursor
    return cursor


async def test_schedule_and_cancel(client: httpx.AsyncClient, keys: Keys) -> None:
    issue = await create(client, keys)
    url = f"{URL}/{issue['id']}"
    at = datetime.now(UTC) + timedelta(days=1)
    scheduled = await client.post(
        f"{url}/schedule", json={"scheduled_at": at.isoformat()}, headers=keys.editor_write
    )
    assert scheduled.status_code == 200, scheduled.text
    assert scheduled.json()["status"] == "scheduled"
    past = await client.post(
        f"{url}/schedule",
        json={"scheduled_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat()},
        headers=keys.editor_write,
    )
    assert past.status_code == 400
    for at in ("9999-12-31T23:00:00-05:00", "2030-01-01T00:00:00"):  # past year 9999 in UTC; naive
        odd = await client.post(
            f"{url}/schedule", json={"scheduled_at": at}, headers=keys.editor_write
        )
        assert odd.status_code == 400, odd.text
        assert odd.json()["errors"][0]["field"] == "scheduled_at"
    cancelled = await client.post(f"{url}/cancel", headers=keys.editor_write)
    assert cancelled.json()["status"] == "draft"
    assert (await client.post(f"{url}/cancel", headers=keys.editor_write)).status_code == 409


async def test_a_test_send_queues_copies(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    issue = await create(client, keys)
    url = f"{URL}/{issue['id']}/test"
    sent = await client.post(
        url, json={"emails": ["me@Example.com", "me@example.com"]}, headers=keys.editor_write
    )
    assert sent.status_code == 202, sent.text
    assert sent.json() == {"sent_to": ["me@example.com"]}  # normalised, once
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM deliveries WHERE kind = 'test'") == 1
    bad = await client.post(url, json={"emails": ["nope"]}, headers=keys.editor_write)
    assert bad.status_code == 400


async def test_the_list_pages_newest_first_and_unknown_issues_are_404(
    client: httpx.AsyncClient, keys: Keys
) -> None:
    ids = [(await create(client, keys, title=f"Issue {n}"))["id"] for n in range(3)]
    first = (await client.get(URL, params={"limit": 2}, headers=keys.editor_read)).json()
    second = (
        await client.get(
            URL, params={"limit": 2, "cursor": first["next_cursor"]}, headers=keys.editor_read
        )
    ).json()
    assert [i["id"] for i in first["items"] + second["items"]] == list(reversed(ids))
    assert second["next_cursor"] is None
    missing = f"{URL}/{uuid.uuid4()}"
    for path in ("", "/preview", "/stats", "/deliveries"):
        assert (await client.get(missing + path, headers=keys.editor_read)).status_code == 404
    for path in ("/publish", "/cancel", "/retry-failed"):
        assert (await client.post(missing + path, headers=keys.editor_write)).status_code == 404


async def test_the_service_refuses_a_schedule_past_year_9999_in_utc(
    client: httpx.AsyncClient, keys: Keys, db: Database, settings: Settings
) -> None:
    """For every caller (the admin's form passes an ISO time with an offset through)."""
    issue = await create(client, keys)
    late = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-5)))
    with pytest.raises(ValidationError) as refused:
        await IssueService(db, settings).schedule(uuid.UUID(issue["id"]), late)
    assert refused.value.field == "scheduled_at"


async def test_an_issue_targets_lists_and_a_segment_by_api(
    client: httpx.AsyncClient, keys: Keys, db: Database
) -> None:
    async with db.connection() as conn:
        await conn.execute("INSERT INTO lists (slug, name) VALUES ('offers', 'Offers')")
        segment_id = await conn.fetchval(
            "INSERT INTO segments (name, filter) VALUES ('All', '{\"status\": [\"confirmed\"]}')"
            " RETURNING id"
        )
    plain = await create(client, keys)
    assert (plain["lists"], plain["segment_id"]) == (["default"], None)
    issue = await create(client, keys, lists=["offers", "default"], segment_id=str(segment_id))
    assert sorted(issue["lists"]) == ["default", "offers"]
    assert issue["segment_id"] == str(segment_id)
    url = f"{URL}/{issue['id']}"
    kept = await client.put(
        url, json={"title": "Same target", "text_content": "t"}, headers=keys.editor_write
    )
    assert sorted(kept.json()["lists"]) == ["default", "offers"]
    assert kept.json()["segment_id"] == str(segment_id)
    cleared = await client.put(
        url, json={"title": "T", "text_content": "t", "segment_id": None}, headers=keys.editor_write
    )
    assert (sorted(cleared.json()["lists"]), cleared.json()["segment_id"]) == (
        ["default", "offers"],
        None,
    )
    narrowed = await client.put(
        url,
        json={"title": "T", "text_content": "t", "lists": ["offers"]},
        headers=keys.editor_write,
    )
    assert narrowed.json()["lists"] == ["offers"]
    listed = (await client.get(URL, headers=keys.editor_read)).json()["items"]
    assert {i["id"]: i["lists"] for i in listed}[issue["id"]] == ["offers"]

    for body, field in (
        ({"lists": []}, "lists"),
        ({"lists": ["nope"]}, "lists"),
        ({"lists": ["Bad Slug"]}, "lists"),
        ({"lists": ["default"], "segment_id": str(uuid.uuid4())}, "segment_id"),
        ({"lists": [f"l{n}" for n in range(101)]}, "lists"),  # more than an issue may have
        ({"lists": [f"l{n}" for n in range(10_000)]}, "lists"),
        ({"lists": ["x" * 61]}, "lists"),
        ({"lists": [["default"]]}, "lists"),
    ):
        refused = await client.post(URL, json={**DRAFT, **body}, headers=keys.editor_write)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert field in refused.text, refused.text
    published = await client.post(f"{url}/publish", headers=keys.editor_write)
    assert published.status_code == 202, published.text
    frozen = await client.put(
        url,
        json={"title": "T", "text_content": "t", "lists": ["default"]},
        headers=keys.editor_write,
    )
    assert frozen.status_code == 409


async def test_a_markdown_body_is_converted_off_the_event_loop(
    client: httpx.AsyncClient, keys: Keys, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Up to 2 MiB of Markdown: some shapes ("[" repeated, unclosed emphasis) take
    # markdown-it seconds, which on the event loop would stall every request of the
    # process; the API converts it in the render pool, as the admin editor does.
    from herald.api import issue_shapes

    threads: list[str] = []
    parse = issue_shapes.IssueContent.parse

    def recorded(**fields: Any) -> Any:
        threads.append(threading.current_thread().name)
        return parse(**fields)

    monkeypatch.setattr(issue_shapes.IssueContent, "parse", recorded)
    issue = await create(client, keys, markdown="[" * 20_000 + " *a " * 20_000)
    replaced = await client.put(
        f"{URL}/{issue['id']}", json={**DRAFT, "markdown": "Again"}, headers=keys.editor_write
    )
    assert replaced.status_code == 200, replaced.text
    assert len(threads) == 2
    assert threading.main_thread().name not in threads, threads
