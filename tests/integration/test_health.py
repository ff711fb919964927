"""Health probes, and what requests get when the database is gone."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import httpx
import pytest

from herald.composition.app import create_app
from herald.core.config import Settings
from herald.core.db import Database
from tests.support.database import free_port, make_settings


async def test_health_check_is_200_with_an_empty_body(client: httpx.AsyncClient) -> None:
    response = await client.get("/health_check")
    assert response.status_code == 200
    assert response.content == b""


async def test_live_and_ready_are_200_when_all_is_well(client: httpx.AsyncClient) -> None:
    assert (await client.get("/health/live")).status_code == 200
    ready = await client.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"


async def test_ready_is_503_while_draining(settings: Settings, db: Database) -> None:
    app = create_app(settings, db=db)
    async with app.router.lifespan_context(app):
        app.state.herald.draining = True
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/health/ready")).status_code == 503
            assert (await client.get("/health/live")).status_code == 200


@pytest.fixture
async def dead_database_client() -> AsyncIterator[httpx.AsyncClient]:
    """The app with a pool pointed at a port where no database listens."""
    dsn = f"postgresql://herald@127.0.0.1:{free_port()}/herald"
    settings = make_settings(dsn, db={"pool_min_size": 0, "connect_timeout_seconds": 1.0})
    database = await Database.open(dsn, settings.db)
    app = create_app(settings, db=database)
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                yield client
    finally:
        await database.close()


async def test_ready_is_503_when_the_database_is_unreachable(
    dead_database_client: httpx.AsyncClient,
) -> None:
    response = await dead_database_client.get("/health/ready")
    assert response.status_code == 503
    assert (await dead_database_client.get("/health/live")).status_code == 200


async def test_requests_fail_fast_with_503_when_the_database_is_down(
    dead_database_client: httpx.AsyncClient,
) -> None:
    started = time.monotonic()
    response = await dead_database_client.post(
        "/subscriptions", data={"name": "Ann", "email": "ann@example.com"}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert "database" in response.text
    assert elapsed < 3.0
