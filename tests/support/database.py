"""Database fixtures for the integration and e2e tiers (the unit tier never imports this).

Database tiers use one Postgres server per test session: the one named by
``HERALD_TEST_DATABASE_URL`` (an admin DSN) or else an embedded server in a
temporary directory (fsync off: test data need not survive a power cut). The
schema is built once, by running the real migrations into a template database;
every test gets its own database cloned from it (``CREATE DATABASE … TEMPLATE``),
so tests share no state and run in any order.
"""

from __future__ import annotations

import asyncio
import os
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
import pytest

from herald.core import migrate
from herald.core.config import Settings
from herald.core.db import Database, quote_ident
from herald.core.embedded_pg import EmbeddedPostgres
from tests.support.tmp import public_tmpdir

TEST_PG_SETTINGS = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "300",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + name))


@pytest.fixture(scope="session")
def pg_admin_dsn() -> Iterator[str]:
    """A DSN with rights to create databases, on the session's Postgres server."""
    external = os.environ.get("HERALD_TEST_DATABASE_URL")
    if external:
        yield external
        return
    server = EmbeddedPostgres(
        public_tmpdir("herald-test-pg-"), database="postgres", extra_settings=TEST_PG_SETTINGS
    )
    server.start()
    try:
        yield server.dsn("postgres")
    finally:
        server.stop()


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in statements:
            await conn.execute(statement)
    finally:
        await conn.close()


_SERVER_MAJOR: dict[str, int] = {}


async def _server_major(dsn: str) -> int:
    if dsn not in _SERVER_MAJOR:
        conn = await asyncpg.connect(dsn)
        try:
            _SERVER_MAJOR[dsn] = conn.get_server_version().major
        finally:
            await conn.close()
    return _SERVER_MAJOR[dsn]


@pytest.fixture(scope="session")
def template_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """A database migrated to head with the real migrations; cloned per test."""
    name = f"herald_template_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(pg_admin_dsn, f"CREATE DATABASE {quote_ident(name)}"))
    dsn = with_database(pg_admin_dsn, name)
    migrate.upgrade(dsn)
    try:
        yield dsn
    finally:
        asyncio.run(
            _admin(pg_admin_dsn, f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")
        )


@pytest.fixture
async def database_url(pg_admin_dsn: str, template_dsn: str) -> AsyncIterator[str]:
    """A fresh, migrated database of this test's own."""
    template = urlsplit(template_dsn).path.lstrip("/")
    name = f"herald_test_{uuid.uuid4().hex[:12]}"
    # FILE_COPY (Postgres 15+) clones a small database faster than the default WAL_LOG.
    strategy = " STRATEGY FILE_COPY" if await _server_major(pg_admin_dsn) >= 15 else ""
    await _admin(
        pg_admin_dsn,
        f"CREATE DATABASE {quote_ident(name)} TEMPLATE {quote_ident(template)}{strategy}",
    )
    try:
        yield with_database(pg_admin_dsn, name)
    finally:
        await _admin(pg_admin_dsn, f"DROP DATABASE IF EXISTS {quote_ident(name)} WITH (FORCE)")


def make_settings(database_url: str, **overrides: object) -> Settings:
    """Settings for tests: fast polling and retries, an explicit database and base URL."""
    base: dict[str, object] = {
        "database_url": database_url,
        "base_url": "http://herald.test",
        "secret_key": "s" * 48,
        "data_dir": Path(tempfile.gettempdir()) / "herald-test-data",
        "delivery": {
            "poll_interval_seconds": 0.05,
            "retry_base_seconds": 0.05,
            "retry_max_seconds": 0.2,
            "lease_seconds": 5.0,
            "drain_seconds": 5.0,
        },
    }
    base.update(overrides)
    return Settings(**base)  # type: ignore[arg-type]


@pytest.fixture
def settings(database_url: str) -> Settings:
    return make_settings(database_url)


@pytest.fixture
async def db(database_url: str, settings: Settings) -> AsyncIterator[Database]:
    database = await Database.open(database_url, settings.db, "herald-test")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process (lifespan included)."""
    from herald.composition.app import create_app

    app = create_app(settings, db=db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            yield c
