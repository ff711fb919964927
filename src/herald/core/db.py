"""The asyncpg pool and the one place database failures become ``Unavailable``.

Every request-path use of the database goes through :class:`Database`, which
bounds how long anything may wait: connecting, acquiring a pooled connection and
running a statement. A dead or unreachable database therefore turns into a fast
503 (via ``Unavailable``) instead of a hanging request.

Behind a pooler in transaction mode (``HERALD_DB__POOLER=transaction``, PgBouncer
``pool_mode = transaction``) each transaction may run on another server connection,
so the pool keeps no session state there (measured with PgBouncer 1.18, README
"Behind PgBouncer"): no prepared-statement cache (named statements vanish or, shared
by several processes, bind to the wrong query), no reset query on release (its
``RESET ALL`` would wipe settings the pooler gives its server connections), and only
the startup parameters PgBouncer tracks per client (``application_name``,
``TimeZone``): it refuses others, ``statement_timeout`` among them. LISTEN, migrations
and session advisory locks use :func:`connect` on the direct URL instead.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, TypeAlias

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from herald.core import sql
from herald.core.config import DatabaseSettings, Pooler
from herald.core.errors import Unavailable
from herald.core.metrics import DB_POOL_CONNECTIONS, DB_POOL_MAX, DB_POOL_WAITING
from herald.core.telemetry import get_logger

Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"

QUERIES = sql.load("herald.core")
log = get_logger("herald.db")

# Failures that mean "the database cannot serve right now", not "this query is wrong".
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,  # includes "connection was closed in the middle of operation"
    asyncpg.PostgresConnectionError,  # SQLSTATE class 08
    asyncpg.OperatorInterventionError,  # class 57: admin shutdown, cannot connect now, timeouts
    asyncpg.InsufficientResourcesError,  # class 53: too many connections, disk full
    # A connection that dies inside a transaction block can fail its rollback with
    # "cannot switch to state 15; another operation (2) is in progress" (seen in bench R2
    # while Postgres shut down): the database went away, not a bug in the request.
    asyncpg.InternalClientError,
)
# Opening a connection: any refusal by the server (a wrong password, no such database) is
# also "cannot connect", a line for the operator rather than a driver's traceback.
CONNECT_ERRORS: tuple[type[BaseException], ...] = (*_UNAVAILABLE_ERRORS, asyncpg.PostgresError)


def cannot_connect(exc: BaseException) -> Unavailable:
    return Unavailable(f"cannot connect to the database: {exc}")


def is_unavailable_error(exc: BaseException) -> bool:
    return isinstance(exc, _UNAVAILABLE_ERRORS)


def server_settings(
    settings: DatabaseSettings, application_name: str, *, pooled: bool = False
) -> dict[str, str]:
    """Startup parameters. ``pooled`` through a transaction pooler: only those PgBouncer
    passes on (it refuses the timeouts; give them to its server connections instead)."""
    tracked = {"application_name": application_name, "timezone": "UTC"}
    if pooled and settings.pooler is Pooler.TRANSACTION:
        return tracked
    return tracked | {
        "statement_timeout": str(int(settings.statement_timeout_seconds * 1000)),
        "idle_in_transaction_session_timeout": "60000",
    }


async def _keep_session(_conn: asyncpg.Connection[asyncpg.Record]) -> None:
    """The pool's reset on release behind a transaction pooler: nothing to reset (asyncpg
    still rolls back an open transaction and drops listeners)."""


async def connect(
    dsn: str, settings: DatabaseSettings, application_name: str = "herald"
) -> asyncpg.Connection[asyncpg.Record]:
    """One connection outside the pool (LISTEN, migrations, admin tasks)."""
    try:
        return await asyncpg.connect(
            dsn,
            timeout=settings.connect_timeout_seconds,
            command_timeout=settings.statement_timeout_seconds + 5,
            server_settings=server_settings(settings, application_name),
        )
    except CONNECT_ERRORS as exc:
        raise cannot_connect(exc) from exc


class Database:
    """A bounded asyncpg pool. Use ``connection()`` / ``transaction()``, never the raw pool."""

    def __init__(
        self,
        pool: asyncpg.Pool[asyncpg.Record],
        settings: DatabaseSettings,
        name: str = "herald",
    ) -> None:
        self._pool = pool
        self._settings = settings
        self._open = DB_POOL_CONNECTIONS.labels(name, "open")
        self._in_use = DB_POOL_CONNECTIONS.labels(name, "in_use")
        self._waiting = DB_POOL_WAITING.labels(name)
        DB_POOL_MAX.labels(name).set(settings.pool_max_size)

    @classmethod
    async def open(
        cls, dsn: str, settings: DatabaseSettings, application_name: str = "herald"
    ) -> Database:
        pooled: dict[str, Any] = {}
        if settings.pooler is Pooler.TRANSACTION:
            pooled = {"statement_cache_size": 0, "reset": _keep_session}
        try:
            pool = await asyncpg.create_pool(
                dsn,
                min_size=settings.pool_min_size,
                max_size=settings.pool_max_size,
                timeout=settings.connect_timeout_seconds,
                command_timeout=settings.statement_timeout_seconds + 5,
                max_inactive_connection_lifetime=300.0,
                server_settings=server_settings(settings, application_name, pooled=True),
                **pooled,
            )
        except CONNECT_ERRORS as exc:
            raise cannot_connect(exc) from exc
        database = cls(pool, settings, application_name)
        if pooled:
            await database._check_pooled_timeout()
        return database

    async def _check_pooled_timeout(self) -> None:
        """Warn when statements through the pooler have no server-side time limit."""
        try:
            async with self.connection() as conn:
                timeout = await conn.fetchval(QUERIES["statement_timeout"])
        except Unavailable:
            return
        if timeout == "0":
            log.warning(
                "no statement_timeout on the pooler's server connections: queries are "
                "only bounded by the client-side timeout; give them one (PgBouncer: "
                "connect_query in [databases], or ALTER ROLE ... SET statement_timeout)",
                client_timeout_seconds=self._settings.statement_timeout_seconds + 5,
            )

    async def close(self) -> None:
        try:
            await asyncio.wait_for(self._pool.close(), timeout=10)
        except TimeoutError:
            self._pool.terminate()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        waiting = True
        self._waiting.inc()
        try:
            async with self._pool.acquire(timeout=self._settings.acquire_timeout_seconds) as conn:
                waiting = False
                self._waiting.dec()
                self._in_use.inc()
                self._open.set(self._pool.get_size())
                try:
                    yield conn
                finally:
                    self._in_use.dec()
        except _UNAVAILABLE_ERRORS as exc:
            raise Unavailable("the database is unavailable, please retry shortly") from exc
        finally:
            if waiting:
                self._waiting.dec()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Connection]:
        async with self.connection() as conn, conn.transaction():
            yield conn

    async def ping(self, timeout: float = 2.0) -> bool:
        """True when the database answers ``SELECT 1`` within ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout), self.connection() as conn:
                return bool(await conn.fetchval(QUERIES["ping"]))
        except (Unavailable, TimeoutError):
            return False

    @property
    def pool(self) -> asyncpg.Pool[asyncpg.Record]:
        """For tests and benchmarks that need pool statistics."""
        return self._pool

    def stats(self) -> dict[str, Any]:
        return {"size": self._pool.get_size(), "idle": self._pool.get_idle_size()}


async def try_advisory_lock(conn: Connection, key: int) -> bool:
    """Take the session-level advisory lock ``key`` if it is free (or this session's)."""
    return bool(await conn.fetchval(QUERIES["try_advisory_lock"], key))


def quote_ident(name: str) -> str:
    """Quote an SQL identifier (database names cannot be bind parameters)."""
    return '"' + name.replace('"', '""') + '"'


async def ensure_database(admin_dsn: str, name: str, settings: DatabaseSettings) -> None:
    """Create database ``name`` unless it exists (used for the embedded server)."""
    conn = await connect(admin_dsn, settings, "herald-setup")
    try:
        if not await conn.fetchval(QUERIES["database_exists"], name):
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f"CREATE DATABASE {quote_ident(name)}")
    finally:
        await conn.close()
