"""Helpers for publishing tests: subscribers in bulk, an admin session, a worker."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from herald.auth.domain import Role
from herald.auth.passwords import Passwords
from herald.auth.service import AuthService
from herald.composition.app import create_app
from herald.core.config import Settings
from herald.core.db import Database
from herald.delivery.domain import DeliveryKind
from herald.delivery.worker import DeliveryWorker
from herald.issues.delivery import IssueDeliveries
from herald.issues.service import IssueService
from tests.support.queue import RecordingProvider

PASSWORD = "correct horse battery staple"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
IDEMPOTENCY = re.compile(r'name="idempotency_key" value="([^"]+)"')


async def add_subscribers(
    db: Database, count: int, *, status: str = "confirmed", prefix: str = "reader"
) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(count)]
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO subscriptions (id, email, name, status) VALUES ($1, $2, $3, $4)",
            [(i, f"{prefix}{n}@example.com", f"Reader {n}", status) for n, i in enumerate(ids)],
        )
    return ids


async def create_admin(db: Database, settings: Settings, username: str = "admin") -> uuid.UUID:
    passwords = Passwords(memory_kib=8 * 1024, time_cost=1, threads=1)
    try:
        return await AuthService(db, settings, passwords).create_user(username, PASSWORD)
    finally:
        passwords.close()


async def add_user(db: Database, settings: Settings, username: str, role: Role) -> None:
    passwords = Passwords(memory_kib=8 * 1024, time_cost=1, threads=1)
    try:
        await AuthService(db, settings, passwords).create_user(username, PASSWORD, role)
    finally:
        passwords.close()


async def log_in(client: httpx.AsyncClient, username: str = "admin") -> None:
    page = await client.get("/login")
    token = CSRF.search(page.text)
    assert token
    response = await client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token.group(1)}
    )
    assert response.headers["location"] == "/admin/dashboard", response.text


async def newsletter_form(client: httpx.AsyncClient) -> dict[str, str]:
    page = await client.get("/admin/newsletters")
    assert page.status_code == 200, page.text
    csrf = CSRF.search(page.text)
    key = IDEMPOTENCY.search(page.text)
    assert csrf
    assert key
    return {"csrf_token": csrf.group(1), "idempotency_key": key.group(1)}


class IssueWorker(DeliveryWorker):
    """A worker as ``herald worker`` runs it: issue rendering plus the fan-out step its
    scheduler loop runs (:func:`drain` runs both)."""

    def __init__(
        self, db: Database, settings: Settings, provider: RecordingProvider, **delivery: object
    ) -> None:
        issues = IssueDeliveries(db, settings)
        super().__init__(
            db,
            provider,
            settings.delivery.model_copy(update=delivery),
            renderers={DeliveryKind.ISSUE: issues.render},
            after_batch=issues.after_batch,
            name=f"test-{uuid.uuid4().hex[:6]}",
        )
        self.issues = IssueService(db, settings)


def issue_worker(
    db: Database, settings: Settings, provider: RecordingProvider, **delivery: object
) -> IssueWorker:
    return IssueWorker(db, settings, provider, **delivery)


async def drain(worker: DeliveryWorker, rounds: int = 50) -> None:
    """Queue the recipients of published issues (an IssueWorker), then send until empty."""
    if isinstance(worker, IssueWorker):
        await fan_out(worker.issues)
    for _ in range(rounds):
        if (await worker.run_once()).claimed == 0:
            return
    raise AssertionError("the queue did not drain")


async def fan_out(service: IssueService) -> None:
    """Run the workers' fan-out step until no published issue has recipients left to queue."""
    for _ in range(10_000):
        if await service.fan_out_step() is None:
            return
    raise AssertionError("the fan-out did not finish")


async def publish_now(service: IssueService, issue_id: uuid.UUID) -> int:
    """Publish and queue every recipient at once (what the workers do after a publish);
    the number of deliveries queued."""
    await service.publish(issue_id)
    await fan_out(service)
    recipients = (await service.get(issue_id)).recipients
    assert recipients is not None
    return recipients


@pytest.fixture
async def admin_client(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> httpx.AsyncClient:
    """The ``client`` fixture, signed in as ``admin``."""
    await create_admin(db, settings)
    await log_in(client)
    return client


@asynccontextmanager
async def signed_in(
    settings: Settings, db: Database, username: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app of its own (a second browser), signed in as ``username``."""
    app = create_app(settings, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            await log_in(c, username)
            yield c


@pytest.fixture
async def editor(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app of its own, signed in as ``ed``, an editor."""
    await add_user(db, settings, "ed", Role.EDITOR)
    async with signed_in(settings, db, "ed") as client:
        yield client
