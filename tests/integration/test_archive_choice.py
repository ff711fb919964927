"""Making an issue public: the editor's checkbox and the API's field (migration 0030)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from herald.issues.views import IssueViews
from tests.integration.test_issue_pages import fetchval, token
from tests.support.api import Keys, api_client, make_keys, new_app

PUBLIC = "SELECT public FROM newsletter_issues WHERE id = $1"


async def test_the_editor_checkbox_makes_an_issue_public_and_a_post_without_it_keeps_it(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    editor = await admin_client.get("/admin/issues/new")
    assert 'name="public"' in editor.text
    assert 'name="public_field"' in editor.text
    assert 'name="public" value="on" aria-describedby="public-hint" checked' not in editor.text
    base = {
        "csrf_token": await token(admin_client, "/admin/issues/new"),
        "title": "Open letter",
        "format": "markdown",
        "markdown": "Hi",
    }
    created = await admin_client.post(
        "/admin/issues/new", data={**base, "public_field": "1", "public": "on"}
    )
    assert created.status_code == 303, created.text
    issue_id = uuid.UUID(created.headers["location"].rsplit("/", 1)[-1])
    assert await fetchval(db, PUBLIC, issue_id) is True
    page = await admin_client.get(f"/admin/issues/{issue_id}/edit")
    assert 'aria-describedby="public-hint" checked' in page.text

    # A post without the field (a script of the previous release) leaves it as it is.
    kept = await admin_client.post(f"/admin/issues/{issue_id}/edit", data=base)
    assert kept.status_code == 303, kept.text
    assert await fetchval(db, PUBLIC, issue_id) is True
    unchecked = await admin_client.post(
        f"/admin/issues/{issue_id}/edit", data={**base, "public_field": "1"}
    )
    assert unchecked.status_code == 303, unchecked.text
    assert await fetchval(db, PUBLIC, issue_id) is False


@pytest.fixture
async def keys(db: Database, settings: Settings) -> Keys:
    return await make_keys(db, settings)


@pytest.fixture
async def api(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with api_client(new_app(settings, db)) as c:
        yield c


async def test_the_api_field_and_the_slug_given_at_publishing(
    api: httpx.AsyncClient, keys: Keys
) -> None:
    body = {"title": "Hello, archive!", "markdown": "Hi {{ subscriber.name }}"}
    plain = await api.post("/api/v1/issues", json=body, headers=keys.editor_write)
    assert plain.status_code == 201, plain.text
    assert plain.json()["public"] is False
    assert plain.json()["archive_slug"] is None
    made = await api.post(
        "/api/v1/issues", json={**body, "public": True}, headers=keys.editor_write
    )
    assert made.status_code == 201, made.text
    issue = made.json()
    assert issue["public"] is True
    assert issue["archive_slug"] is None, "no slug before publishing"
    url = f"/api/v1/issues/{issue['id']}"
    replaced = await api.put(
        url, json={"title": "Renamed", "text_content": "x"}, headers=keys.editor_write
    )
    assert replaced.json()["public"] is True, "left out: unchanged"
    bad = await api.put(url, json={**body, "public": "yes please"}, headers=keys.editor_write)
    assert bad.status_code == 400, bad.text
    for loose in ("yes", "true", 1):  # strict, like tracking: a string or number is no choice
        loose_bad = await api.put(url, json={**body, "public": loose}, headers=keys.editor_write)
        assert loose_bad.status_code == 400, loose_bad.text
    published = await api.post(f"{url}/publish", headers=keys.editor_write)
    assert published.status_code == 202, published.text
    assert published.json()["archive_slug"] == "renamed"
    again = (await api.get(url, headers=keys.editor_read)).json()
    assert again["archive_slug"] == "renamed"
    refused = await api.put(url, json={**body, "public": False}, headers=keys.editor_write)
    assert refused.status_code == 409, "a published issue's choice is frozen"


async def test_the_issue_list_and_the_issue_carry_their_publicity(
    db: Database, settings: Settings
) -> None:
    # Read with the issue's own row (get_issue, list_issues): the list's rows are not all
    # "private" and a get is one statement.
    service = IssueService(db, settings)
    content = IssueContent.parse(title="Open", html_content="<p>Hi</p>", public=True)
    public_id = await service.create_draft(content, None)
    private_id = await service.create_draft(
        IssueContent.parse(title="Closed", html_content="<p>Hi</p>"), None
    )
    listed = {
        row.issue.id: row.issue.public
        for row in (await IssueViews(db, settings).issue_list(10, None)).rows
    }
    assert listed[public_id] is True
    assert listed[private_id] is False
    assert (await service.get(public_id)).public is True
    assert (await service.get(private_id)).archive_slug is None
