"""Helpers for tests of the JSON API: users with API keys of each scope and role, and an
in-process client on an app (optionally with extra routes)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from fastapi import FastAPI

from herald.auth.domain import Role, Scope
from herald.auth.service import AuthService
from herald.composition.app import create_app
from herald.core.config import Settings
from herald.core.db import Database
from tests.support.auth import fast_passwords

PASSWORD = "Api-Test-Pa55word-7d41"


@dataclass(frozen=True)
class Keys:
    """Bearer headers: an admin's and an editor's key, each with the read and write scope."""

    admin_id: uuid.UUID
    editor_id: uuid.UUID
    admin_write: dict[str, str]
    admin_read: dict[str, str]
    editor_write: dict[str, str]
    editor_read: dict[str, str]


async def make_keys(db: Database, settings: Settings) -> Keys:
    passwords = fast_passwords()
    try:
        service = AuthService(db, settings, passwords)
        admin = await service.create_user("admin", PASSWORD)
        editor = await service.create_user("editor", PASSWORD, Role.EDITOR)
        headers: list[dict[str, str]] = []
        for user, scope in (
            (admin, Scope.WRITE),
            (admin, Scope.READ),
            (editor, Scope.WRITE),
            (editor, Scope.READ),
        ):
            _, key = await service.create_api_key(user, f"{scope} key", scope)
            headers.append({"Authorization": f"Bearer {key}"})
        return Keys(admin, editor, *headers)
    finally:
        passwords.close()


@asynccontextmanager
async def api_client(
    app: FastAPI, *, raise_app_exceptions: bool = True
) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            yield c


def new_app(settings: Settings, db: Database) -> FastAPI:
    return create_app(settings, db=db)
