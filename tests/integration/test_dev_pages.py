"""Development pages on a development server that other machines can reach (issue 8
item 13): the outbox only for clients on this machine or signed-in admins."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from herald.admin.dev_outbox import is_loopback
from herald.composition.app import create_app
from herald.core.config import Settings
from herald.core.db import Database
from herald.email.message import EmailMessage
from herald.email.outbox import OutboxProvider
from tests.support.newsletters import create_admin, log_in

SECRET_LINK = "http://herald.test/subscriptions/confirm?subscription_token=SeCrEtToKeN123"


@pytest.fixture
async def sent(db: Database) -> None:
    message = EmailMessage(
        sender="newsletter@localhost",
        recipient="victim@example.com",
        subject="Please confirm",
        html_body=f'<a href="{SECRET_LINK}">confirm</a>',
        text_body=f"Confirm: {SECRET_LINK}",
    )
    await OutboxProvider(db).send_batch([message])


@pytest.fixture
async def remote(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A client on another machine (TEST-NET-3 address) of a development server."""
    assert not settings.is_production
    app = create_app(settings, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 50123))
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            yield c


async def test_the_outbox_is_shown_to_a_client_on_this_machine(
    client: httpx.AsyncClient, sent: None
) -> None:
    response = await client.get("/dev/outbox")
    assert response.status_code == 200
    assert "SeCrEtToKeN123" in response.text


@pytest.mark.parametrize(
    ("accept", "shown"),
    [("text/html", "text/html"), ("application/json", "application/json"), ("*/*", "text/plain")],
)
async def test_the_outbox_is_refused_to_an_anonymous_client_on_the_network(
    remote: httpx.AsyncClient, sent: None, accept: str, shown: str
) -> None:
    response = await remote.get("/dev/outbox", headers={"Accept": accept})
    assert response.status_code == 403
    assert response.headers["content-type"].startswith(shown)
    assert "SeCrEtToKeN123" not in response.text
    assert "victim@example.com" not in response.text
    assert "log in at /login" in response.text


async def test_the_outbox_is_shown_to_a_signed_in_admin_on_the_network(
    remote: httpx.AsyncClient, sent: None, db: Database, settings: Settings
) -> None:
    await create_admin(db, settings)
    await log_in(remote)
    response = await remote.get("/dev/outbox")
    assert response.status_code == 200
    assert "SeCrEtToKeN123" in response.text


async def test_the_api_reference_stays_public_on_a_development_server(
    remote: httpx.AsyncClient,
) -> None:
    # A deliberate choice: /docs and /openapi.json describe the API's shape only (no data,
    # no credentials); start-up warns that they are reachable (see test_runtime_warning).
    assert (await remote.get("/openapi.json")).status_code == 200
    assert (await remote.get("/docs")).status_code == 200


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.4.5.6", True),
        ("::1", True),
        ("::ffff:127.0.0.1", True),
        ("203.0.113.7", False),
        ("10.0.0.1", False),
        ("::ffff:203.0.113.7", False),
        ("fe80::1", False),
        ("localhost", False),  # uvicorn reports addresses, never names: refuse the unexpected
        ("", False),
        (None, False),
    ],
)
def test_which_client_addresses_count_as_this_machine(host: str | None, loopback: bool) -> None:
    assert is_loopback(host) is loopback
