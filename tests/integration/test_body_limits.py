"""Request body limits on the real app (contract §5): 2 MiB for the forms that carry an
issue's bodies, 64 KiB everywhere else, and a 413 in the format the client asked for."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from urllib.parse import parse_qs, urlencode

import httpx
import pytest

from herald.core.db import Database
from tests.support.newsletters import CSRF, newsletter_form

MiB = 1024 * 1024
ISSUE_LIMIT = 2 * MiB
DEFAULT_LIMIT = 64 * 1024
ISSUE_URL = re.compile(r"^/admin/issues/([0-9a-f-]{36})$")
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}


async def csrf(client: httpx.AsyncClient, url: str) -> str:
    page = await client.get(url)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found
    return found.group(1)


def email_builder_html(encoded_size: int, fields: dict[str, str]) -> bytes:
    """An urlencoded form whose HTML body makes the whole request exactly ``encoded_size``
    bytes: inline-styled paragraphs, as email builders write them. Cyrillic text encodes to
    6 bytes a letter, so a 2 MiB request stays under the issue's own 1M-character limit."""
    cell = urlencode({"": '<p style="margin:0">Привет, читатель! Новости недели.</p>'})[1:]
    head = urlencode({**fields, "html_content": ""}).encode()
    room = encoded_size - len(head)
    cells = cell.encode() * (room // len(cell))
    body = cells + b"x" * (room - len(cells))
    return head + body


async def test_a_150_kb_html_issue_is_saved_through_the_new_issue_form(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    fields = {
        "csrf_token": await csrf(admin_client, "/admin/issues/new"),
        "title": "A realistic newsletter",
        "format": "html",
        "text_content": "Hello",
    }
    content = email_builder_html(150_000, fields)
    response = await admin_client.post("/admin/issues/new", content=content, headers=FORM)
    assert response.status_code == 303, response.text[:500]
    found = ISSUE_URL.match(response.headers["location"])
    assert found
    async with db.connection() as conn:
        html = await conn.fetchval(
            "SELECT html_content FROM newsletter_issues WHERE id = $1", uuid.UUID(found.group(1))
        )
    assert html == parse_qs(content.decode())["html_content"][0]


async def test_an_issue_edit_accepts_a_body_of_exactly_2_mib_and_refuses_one_byte_more(
    admin_client: httpx.AsyncClient,
) -> None:
    token = await csrf(admin_client, "/admin/issues/new")
    created = await admin_client.post(
        "/admin/issues/new",
        data={"csrf_token": token, "title": "Draft", "format": "html", "html_content": "<p>x</p>"},
    )
    assert created.status_code == 303, created.text
    url = created.headers["location"] + "/edit"
    fields = {
        "csrf_token": await csrf(admin_client, url),
        "title": "Draft, now big",
        "format": "html",
        "text_content": "Hello",
    }
    exactly = email_builder_html(ISSUE_LIMIT, fields)
    assert len(exactly) == ISSUE_LIMIT
    accepted = await admin_client.post(url, content=exactly, headers=FORM)
    assert accepted.status_code == 303, accepted.text[:500]
    assert accepted.headers["location"] == created.headers["location"]

    too_big = email_builder_html(ISSUE_LIMIT + 1, fields)
    refused = await admin_client.post(url, content=too_big, headers={**FORM, **BROWSER})
    assert refused.status_code == 413
    assert refused.headers["content-type"].startswith("text/html")
    assert "2 MiB" in refused.text


async def test_the_contract_newsletter_form_accepts_150_kb(
    admin_client: httpx.AsyncClient,
) -> None:
    fields = await newsletter_form(admin_client)
    fields = {**fields, "title": "Big one", "text_content": "Hello"}
    content = email_builder_html(150_000, fields)
    response = await admin_client.post("/admin/newsletters", content=content, headers=FORM)
    assert response.status_code == 303, response.text[:500]
    assert response.headers["location"] == "/admin/newsletters"


async def test_the_contract_newsletter_form_refuses_more_than_2_mib(
    admin_client: httpx.AsyncClient,
) -> None:
    fields = await newsletter_form(admin_client)
    content = email_builder_html(ISSUE_LIMIT + 1, {**fields, "title": "Too big"})
    response = await admin_client.post("/admin/newsletters", content=content, headers=FORM)
    assert response.status_code == 413


async def test_other_admin_forms_keep_the_64_kib_limit(admin_client: httpx.AsyncClient) -> None:
    token = await csrf(admin_client, "/admin/password")
    response = await admin_client.post(
        "/admin/password",
        data={"csrf_token": token, "current_password": "x" * DEFAULT_LIMIT},
    )
    assert response.status_code == 413


# -- a 413 speaks the client's language -------------------------------------------------

OVER = b"name=" + b"a" * (65 * 1024) + b"&email=a%40example.com"


async def test_a_65_kib_subscription_is_a_413_html_page_for_browsers(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/subscriptions", content=OVER, headers={**FORM, **BROWSER})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>Request too large</h1>" in response.text
    assert "64 KiB" in response.text
    assert "content-security-policy" in response.headers
    assert response.headers["x-request-id"]


async def test_a_65_kib_subscription_is_a_413_json_error_for_json_clients(
    client: httpx.AsyncClient,
) -> None:
    body = b'{"name": "' + b"a" * (65 * 1024) + b'", "email": "a@example.com"}'
    response = await client.post(
        "/subscriptions", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "payload_too_large"
    assert "64 KiB" in response.json()["message"]


async def test_a_65_kib_subscription_is_a_413_in_plain_text_otherwise(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/subscriptions", content=OVER, headers={**FORM, "Accept": "*/*"})
    assert response.status_code == 413
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "request body too large: the limit is 64 KiB\n"


async def test_an_api_body_over_64_kib_is_a_413(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/api/v1/api-keys",
        content=b'{"name": "' + b"k" * (65 * 1024) + b'"}',
        headers={"Content-Type": "application/json", "Authorization": "Bearer nope"},
    )
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def chunks(total: int, size: int = 16 * 1024) -> AsyncIterator[bytes]:
    sent = 0
    while sent < total:
        part = min(size, total - sent)
        yield b"a" * part
        sent += part


@pytest.mark.parametrize(
    ("accept", "content_type"),
    [
        ("text/html", "text/html"),
        ("application/json", "application/json"),
        ("*/*", "text/plain"),
    ],
)
async def test_a_chunked_subscription_over_64_kib_is_a_413_in_each_format(
    client: httpx.AsyncClient, accept: str, content_type: str
) -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"email=a%40example.com&name="
        async for part in chunks(65 * 1024):
            yield part

    response = await client.post(
        "/subscriptions", content=body(), headers={**FORM, "Accept": accept}
    )
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert response.headers["content-type"].startswith(content_type)
    assert "64 KiB" in response.text


async def test_a_chunked_issue_form_between_64_kib_and_2_mib_is_not_refused(
    admin_client: httpx.AsyncClient,
) -> None:
    fields = {
        "csrf_token": await csrf(admin_client, "/admin/issues/new"),
        "title": "Streamed",
        "format": "html",
        "text_content": "Hello",
    }
    content = email_builder_html(300_000, fields)

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 16 * 1024):
            yield content[start : start + 16 * 1024]

    response = await admin_client.post("/admin/issues/new", content=body(), headers=FORM)
    assert "content-length" not in response.request.headers
    assert response.status_code == 303, response.text[:500]


async def test_a_chunked_issue_form_over_2_mib_is_a_413(admin_client: httpx.AsyncClient) -> None:
    fields = {
        "csrf_token": await csrf(admin_client, "/admin/issues/new"),
        "title": "Streamed",
        "format": "html",
    }
    content = email_builder_html(ISSUE_LIMIT + 1, fields)

    async def body() -> AsyncIterator[bytes]:
        for start in range(0, len(content), 64 * 1024):
            yield content[start : start + 64 * 1024]

    response = await admin_client.post(
        "/admin/issues/new", content=body(), headers={**FORM, **BROWSER}
    )
    assert response.status_code == 413
    assert "2 MiB" in response.text


@pytest.mark.parametrize("path", ["/api/v1/imports", "/admin/subscribers/import"])
async def test_an_import_upload_declared_over_512_mib_is_a_413_before_it_is_read(
    client: httpx.AsyncClient, path: str
) -> None:
    # composition/app.py gives the two upload routes 512 MiB instead of 64 KiB: one byte
    # more is refused from the Content-Length alone, nothing of the body read or spooled.
    read = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal read
        for _ in range(4):
            read += 1
            yield b"x" * 1024

    response = await client.post(
        path,
        content=body(),
        headers={
            "Content-Type": "multipart/form-data; boundary=b",
            "Content-Length": str(512 * MiB + 1),
            "Accept": "application/json",
        },
    )
    assert response.status_code == 413, response.text
    assert "512 MiB" in response.text
    assert read <= 1
