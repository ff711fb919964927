"""Templates, saves and retries that used to poison the queue or lie to the editor.

Each test here failed on the code before the hardening issue: a render error of one
recipient crashed the whole batch; a template error other than a TemplateError was a
500 at save time; a slow template froze the web process; a save that lost a race to
publishing still flashed "saved"; a retry racing completion left a sent issue with
queued rows.
"""

from __future__ import annotations

import asyncio
import html
import math
import re
import uuid

import httpx
import pytest

from herald.core import timebox
from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Conflict, ValidationError
from herald.issues import repository
from herald.issues.domain import IssueContent, IssueStatus
from herald.issues.service import IssueService
from tests.support.newsletters import (
    CSRF,
    add_subscribers,
    drain,
    fan_out,
    issue_worker,
    publish_now,
)
from tests.support.queue import RecordingProvider, enqueue_many, wait_until


async def stored_issue(db: Database, html_body: str, text: str = "text") -> uuid.UUID:
    """An issue as an older Herald may have saved it: no render check on the way in."""
    async with db.connection() as conn:
        return await repository.insert_issue(conn, IssueContent("Stored", html_body, text), None)


async def csrf(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def shown_error(page: httpx.Response) -> str:
    found = re.search(r'id="form-error">([^<]*)<', page.text) or re.search(
        r'<p class="error" role="status">([^<]*)</p>', page.text
    )
    assert found, page.text
    return html.unescape(found.group(1))


# -- item 1: one recipient's failure is that delivery's failure ----------------------------


async def test_one_recipients_render_error_fails_only_that_delivery(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 3)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO subscriptions (id, email, name, status)"
            " VALUES ($1, 'jose@example.com', 'José', 'confirmed')",
            uuid.uuid4(),
        )
    [confirmation] = await enqueue_many(db, 1)  # a confirmation-like email in the same batch
    service = IssueService(db, settings)
    issue_id = await service.create_draft(
        IssueContent.parse(
            title="Names", html_content="<p>{{ subscriber.name.encode('ascii') }}</p>"
        ),
        None,
    )
    await publish_now(service, issue_id)
    provider = RecordingProvider()
    worker = issue_worker(db, settings, provider, batch_size=10)
    report = await worker.run_once()  # one batch: all five rows
    assert report.claimed == 5
    assert sorted(provider.sent) == [
        "reader0@example.com",
        "reader1@example.com",
        "reader2@example.com",
        "user0@example.com",
    ]
    async with db.connection() as conn:
        jose = await conn.fetchrow(
            "SELECT status, last_error FROM deliveries WHERE recipient = 'jose@example.com'"
        )
        other = await conn.fetchval("SELECT status FROM deliveries WHERE id = $1", confirmation)
    assert other == "sent"
    assert jose["status"] == "failed"
    assert jose["last_error"].startswith(
        "the issue cannot be rendered: UnicodeEncodeError: 'ascii' codec can't encode"
    )
    assert jose["last_error"].endswith("(line 1)")
    assert (await service.get(issue_id)).status is IssueStatus.SENT
    # Visible on the issue page's results and retried by "retry failed".
    assert await service.retry_failed(issue_id) == 1


async def test_an_issue_stored_with_a_broken_template_fails_its_deliveries_not_the_worker(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 2)
    issue_id = await stored_issue(db, "<p>{{ 'x' * 10**9 }}</p>")
    async with db.connection() as conn:
        assert await repository.start_publishing(conn, issue_id)
    await fan_out(IssueService(db, settings))
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    assert provider.calls == 0
    async with db.connection() as conn:
        errors = await conn.fetch("SELECT status, last_error FROM deliveries")
    assert {r["status"] for r in errors} == {"failed"}
    assert all("repeating" in r["last_error"] for r in errors)


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        ("{{ 1 // 0 }}", "ZeroDivisionError: integer division or modulo by zero (line 1)"),
        ("{{ subscriber.name.encode('ascii') ~ '\u00e9'.encode('ascii') }}", "UnicodeEncodeError"),
        ("{{ 'x' * 10**9 }}", "repeating 1 characters 1,000,000,000 times is too much"),
        ("{% for i in range(100000) %}{% endfor %}", "range() of 100,000 items is too long"),
    ],
)
async def test_a_body_whose_sample_render_fails_is_refused_with_its_problem(
    admin_client: httpx.AsyncClient, db: Database, body: str, problem: str
) -> None:
    data = {"title": "Bad", "format": "html", "html_content": body, "text_content": "t"}
    data["csrf_token"] = await csrf(admin_client, "/admin/issues/new")
    response = await admin_client.post("/admin/issues/new", data=data)
    assert response.status_code == 400
    assert problem in shown_error(response)
    assert "the template limits are" in response.text or "Error" in problem
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM newsletter_issues") == 0


async def post_contract_form(
    admin_client: httpx.AsyncClient, title: str, html: str
) -> httpx.Response:
    """``POST /admin/newsletters`` as the page's form sends it."""
    page = (await admin_client.get("/admin/newsletters")).text
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    token = CSRF.search(page)
    assert key
    assert token
    return await admin_client.post(
        "/admin/newsletters",
        data={
            "title": title,
            "text_content": "t",
            "html_content": html,
            "idempotency_key": key.group(1),
            "csrf_token": token.group(1),
        },
    )


async def test_the_contract_form_refuses_a_body_that_cannot_render(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    response = await post_contract_form(admin_client, "Bad", "{{ 1 // 0 }}")
    assert response.status_code == 400
    assert "ZeroDivisionError" in response.text
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM newsletter_issues") == 0


async def test_publishing_a_stored_issue_that_cannot_render_is_refused(
    db: Database, settings: Settings
) -> None:
    issue_id = await stored_issue(db, "{{ 1 // 0 }}")
    service = IssueService(db, settings)
    with pytest.raises(ValidationError, match="ZeroDivisionError"):
        await service.publish(issue_id)
    assert (await service.get(issue_id)).status is IssueStatus.DRAFT


# -- item 2: a slow template does not freeze the web process ----------------------------


async def test_a_slow_preview_leaves_the_event_loop_free_and_ends_at_the_time_limit(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    issue_id = await stored_issue(
        db,
        "{% for a in range(5000) %}{% for b in range(5000) %}{{ '' if a < 0 }}"
        "{% endfor %}{% endfor %}",
    )
    preview = asyncio.create_task(admin_client.get(f"/admin/issues/{issue_id}/preview"))

    def rendering() -> bool:  # a time-boxed render is running in a render thread
        with timebox._lock:
            return any(slot.deadline < math.inf for slot in timebox._slots.values())

    await wait_until(lambda: rendering() or preview.done(), timeout=30, interval=0.01)
    health = await admin_client.get("/health/live")
    assert health.status_code == 200
    assert not preview.done(), "the health check had to wait for the template"
    response = await preview
    assert response.status_code == 400
    assert "rendering took longer than 2 seconds" in response.text


# -- item 6: saves and retries tell the truth -------------------------------------------


async def test_a_save_that_loses_the_race_to_publishing_is_not_reported_saved(
    admin_client: httpx.AsyncClient,
    db: Database,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    service = IssueService(db, settings)
    issue_id = await service.create_draft(IssueContent.parse(title="T", text_content="x"), None)
    read = repository.get_issue

    async def published_meanwhile(conn: object, wanted: uuid.UUID) -> object:
        issue = await read(conn, wanted)  # type: ignore[arg-type]
        async with db.connection() as other:  # another editor publishes right now
            await repository.start_publishing(other, wanted)
        monkeypatch.setattr(repository, "get_issue", read)
        return issue

    data = {"title": "Changed", "format": "html", "html_content": "", "text_content": "new"}
    data["csrf_token"] = await csrf(admin_client, f"/admin/issues/{issue_id}/edit")
    monkeypatch.setattr(repository, "get_issue", published_meanwhile)
    response = await admin_client.post(f"/admin/issues/{issue_id}/edit", data=data)
    page = await admin_client.get(response.headers["location"])
    assert "The issue has been saved." not in page.text
    assert "can no longer be changed" in page.text
    assert (await service.get(issue_id)).title == "T"


async def test_a_retry_racing_completion_never_leaves_a_sent_issue_with_queued_rows(
    db: Database, settings: Settings, database_url: str
) -> None:
    await add_subscribers(db, 3)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(IssueContent.parse(title="T", text_content="x"), None)
    await publish_now(service, issue_id)
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE deliveries SET status = CASE WHEN recipient = 'reader0@example.com'"
            " THEN 'failed' ELSE 'sent' END"
        )
    async with db.connection() as retrying, db.connection() as completing:
        retry = retrying.transaction()
        await retry.start()
        await repository.retry_failed(retrying, issue_id)  # uncommitted: the retry is mid-way
        completion = asyncio.create_task(repository.complete_issues(completing, [issue_id]))

        async def completion_waits_or_is_done() -> bool:
            if completion.done():
                return True
            waiting = await retrying.fetchval(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE wait_event_type = 'Lock' AND datname = current_database()"
            )
            return bool(waiting)

        await wait_until(completion_waits_or_is_done, timeout=10)
        await retry.commit()
        await completion
    async with db.connection() as conn:
        status = await conn.fetchval("SELECT status FROM newsletter_issues WHERE id = $1", issue_id)
        queued = await conn.fetchval("SELECT count(*) FROM deliveries WHERE status = 'queued'")
    assert queued == 1
    assert status == "publishing", "a sent issue with a queued delivery would never finish"


# -- item 7: the editor warns where Gmail clips ------------------------------------------


async def test_the_issue_page_warns_when_the_html_passes_gmails_clipping_size(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    service = IssueService(db, settings)
    big = await service.create_draft(
        IssueContent.parse(title="Big", html_content="<p>" + "word " * 30_000 + "</p>"), None
    )
    small = await service.create_draft(IssueContent.parse(title="Small", text_content="hi"), None)
    page = await admin_client.get(f"/admin/issues/{big}")
    assert 'id="clip-warning"' in page.text
    assert "Gmail clips emails above 102 KB" in page.text
    assert 'id="clip-warning"' not in (await admin_client.get(f"/admin/issues/{small}")).text
    form = await admin_client.get("/admin/issues/new")
    assert "ranges of at most 10,000 items" in form.text  # the limits are named
    assert "102 KB" in form.text


async def test_the_service_refuses_what_the_sandbox_refuses(
    db: Database, settings: Settings
) -> None:
    service = IssueService(db, settings)
    with pytest.raises(ValidationError, match="exponent"):
        await service.create_draft(
            IssueContent.parse(title="T", text_content="{{ 9 ** 999 }}"), None
        )
    issue_id = await service.create_draft(IssueContent.parse(title="T", text_content="x"), None)
    await publish_now(service, issue_id)
    with pytest.raises(Conflict):
        await service.update(issue_id, IssueContent.parse(title="T", text_content="y"))


async def test_html_nested_ten_thousand_deep_is_refused_not_a_crash(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    """css-inline crashed the whole process (SIGSEGV) on ~10,000 nested elements."""
    deep = "<div>" * 10_000 + "x" + "</div>" * 10_000
    response = await post_contract_form(admin_client, "Deep", deep)
    assert response.status_code == 400
    assert "more than 1,000 levels deep" in response.text
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM newsletter_issues") == 0
