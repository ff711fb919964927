"""The yardstick for P3: the least a subscribe endpoint could do on Herald's stack.

One FastAPI route, ``POST /insert``, reads the same form body as ``POST /subscriptions``
(``name=…&email=…``) and does one ``INSERT`` through Herald's own asyncpg pool
(:class:`herald.core.db.Database`, same pool settings from the same environment), then
answers a short text. No middleware, no validation, no outbox, no logging per request:
whatever Herald's route costs above this is Herald's own overhead.

Served by the same server and the same number of processes as Herald in the same run::

    uvicorn trivial_app:app_from_env --factory --app-dir bench --workers N
    granian --interface asgi --factory --working-dir bench trivial_app:app_from_env
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import parse_qs

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from herald.core.config import load_settings
from herald.core.db import Database

TABLE_DDL = """
CREATE TABLE IF NOT EXISTS bench_trivial (
    id uuid PRIMARY KEY,
    email text NOT NULL,
    name text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
)
"""
INSERT = "INSERT INTO bench_trivial (id, email, name) VALUES ($1, $2, $3)"


def app_from_env() -> FastAPI:
    """App factory: the DSN and pool settings come from ``HERALD_*`` like Herald's."""
    settings = load_settings()
    assert settings.database_url is not None, "set HERALD_DATABASE_URL"
    dsn = settings.database_url.get_secret_value()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.db = await Database.open(dsn, settings.db, "bench-trivial")
        try:
            yield
        finally:
            await app.state.db.close()

    app = FastAPI(lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/health")
    async def health() -> Response:
        return PlainTextResponse("ok")

    @app.post("/insert")
    async def insert(request: Request) -> Response:
        form = parse_qs((await request.body()).decode())
        db: Database = request.app.state.db
        async with db.connection() as conn:
            await conn.execute(INSERT, uuid.uuid4(), form["email"][0], form["name"][0])
        return PlainTextResponse("ok\n")

    return app
