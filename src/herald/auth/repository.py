"""The only door to ``users``, ``sessions``, ``login_failures`` and ``api_keys``."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from herald.auth.domain import Role, Scope, SessionRecord, UserRecord, UserSummary
from herald.core import sql
from herald.core.db import Connection

Q = sql.load("herald.auth")


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: uuid.UUID
    user_id: uuid.UUID
    username: str
    scope: Scope
    role: Role
    name: str


@dataclass(frozen=True, slots=True)
class ApiKeyView:
    id: uuid.UUID
    name: str
    prefix: str
    scope: Scope
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    username: str


def _user(row: Any) -> UserRecord | None:
    if row is None:
        return None
    return UserRecord(
        row["id"],
        row["username"],
        row["password_hash"],
        row["password_changed_at"],
        Role(row["role"]),
        row["disabled_at"],
    )


async def insert_user(
    conn: Connection, username: str, password_hash: str, role: Role
) -> uuid.UUID | None:
    inserted: uuid.UUID | None = await conn.fetchval(
        Q["insert_user"], uuid.uuid4(), username, password_hash, role.value
    )
    return inserted


async def list_users(conn: Connection) -> list[UserSummary]:
    return [
        UserSummary(
            r["id"],
            r["username"],
            Role(r["role"]),
            r["disabled_at"],
            r["created_at"],
            r["password_changed_at"],
            r["sessions"],
        )
        for r in await conn.fetch(Q["list_users"])
    ]


async def lock_active_admins(conn: Connection) -> set[uuid.UUID]:
    """The active admins, locked until the end of the transaction."""
    return {row["id"] for row in await conn.fetch(Q["lock_active_admins"])}


async def set_user_role(conn: Connection, user_id: uuid.UUID, role: Role) -> bool:
    return await conn.fetchval(Q["set_user_role"], user_id, role.value) is not None


async def set_user_disabled(conn: Connection, user_id: uuid.UUID, disabled: bool) -> bool:
    return await conn.fetchval(Q["set_user_disabled"], user_id, disabled) is not None


async def find_user_by_username(conn: Connection, username: str) -> UserRecord | None:
    return _user(await conn.fetchrow(Q["find_user_by_username"], username))


async def find_user_by_id(conn: Connection, user_id: uuid.UUID) -> UserRecord | None:
    return _user(await conn.fetchrow(Q["find_user_by_id"], user_id))


async def count_users(conn: Connection) -> int:
    count: int = await conn.fetchval(Q["count_users"])
    return count


async def set_password_hash(conn: Connection, user_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute(Q["set_password_hash"], user_id, password_hash)


async def change_password(conn: Connection, user_id: uuid.UUID, password_hash: str) -> None:
    await conn.execute(Q["change_password"], user_id, password_hash)


async def insert_session(
    conn: Connection,
    token_hash: bytes,
    user_id: uuid.UUID,
    *,
    lifetime_seconds: float,
    user_agent: str | None,
    ip: str | None,
) -> None:
    await conn.execute(Q["insert_session"], token_hash, user_id, lifetime_seconds, user_agent, ip)


async def find_session(
    conn: Connection, token_hash: bytes, idle_seconds: float
) -> SessionRecord | None:
    row = await conn.fetchrow(Q["find_session"], token_hash, idle_seconds)
    if row is None:
        return None
    return SessionRecord(
        row["token_hash"],
        row["user_id"],
        row["username"],
        row["last_seen_at"],
        row["created_at"],
        Role(row["role"]),
    )


async def touch_session(conn: Connection, token_hash: bytes) -> None:
    await conn.execute(Q["touch_session"], token_hash)


async def delete_session(conn: Connection, token_hash: bytes) -> None:
    await conn.execute(Q["delete_session"], token_hash)


async def delete_other_sessions(conn: Connection, user_id: uuid.UUID, keep: bytes) -> None:
    await conn.execute(Q["delete_other_sessions"], user_id, keep)


async def delete_all_sessions(conn: Connection, user_id: uuid.UUID) -> None:
    await conn.execute(Q["delete_all_sessions"], user_id)


async def delete_expired_sessions(conn: Connection, idle_seconds: float) -> int:
    status = await conn.execute(Q["delete_expired_sessions"], idle_seconds)
    return int(status.split()[-1])


@dataclass(frozen=True, slots=True)
class ScopeFailures:
    count: int
    # The limit-th most recent failure (None below the limit): when it leaves the
    # window, the scope is below the limit again.
    pivot: datetime | None


@dataclass(frozen=True, slots=True)
class Failures:
    username: ScopeFailures
    ip: ScopeFailures


async def recent_failures(
    conn: Connection, username_key: str, ip: str, window_seconds: float, limit: int
) -> Failures:
    rows = await conn.fetch(Q["recent_failures"], username_key, ip, window_seconds, limit)
    found = {row["scope"]: ScopeFailures(row["failures"], row["pivot"]) for row in rows}
    none = ScopeFailures(0, None)
    return Failures(found.get("username", none), found.get("ip", none))


async def record_attempt(conn: Connection, username_key: str, ip: str) -> list[int]:
    return [row["id"] for row in await conn.fetch(Q["record_attempt"], username_key, ip)]


async def delete_attempts(conn: Connection, ids: list[int]) -> None:
    await conn.execute(Q["delete_attempts"], ids)


async def clear_failures(conn: Connection, username_key: str) -> None:
    await conn.execute(Q["clear_failures"], username_key)


async def delete_old_failures(conn: Connection, older_than_seconds: float) -> int:
    status = await conn.execute(Q["delete_old_failures"], older_than_seconds)
    return int(status.split()[-1])


async def insert_api_key(
    conn: Connection,
    *,
    user_id: uuid.UUID,
    name: str,
    prefix: str,
    key_hash: bytes,
    scope: Scope,
) -> uuid.UUID:
    key_id = uuid.uuid4()
    await conn.execute(Q["insert_api_key"], key_id, user_id, name, prefix, key_hash, scope.value)
    return key_id


async def find_api_key(conn: Connection, key_hash: bytes) -> ApiKeyRecord | None:
    row = await conn.fetchrow(Q["find_api_key"], key_hash)
    if row is None:
        return None
    return ApiKeyRecord(
        row["id"],
        row["user_id"],
        row["username"],
        Scope(row["scope"]),
        Role(row["role"]),
        row["name"],
    )


async def touch_api_key(conn: Connection, key_id: uuid.UUID) -> None:
    await conn.execute(Q["touch_api_key"], key_id)


async def list_api_keys(conn: Connection, user_id: uuid.UUID | None) -> list[ApiKeyView]:
    rows = await conn.fetch(Q["list_api_keys"], user_id)
    return [
        ApiKeyView(
            r["id"],
            r["name"],
            r["prefix"],
            Scope(r["scope"]),
            r["created_at"],
            r["last_used_at"],
            r["revoked_at"],
            r["username"],
        )
        for r in rows
    ]


async def revoke_api_key(conn: Connection, key_id: uuid.UUID, user_id: uuid.UUID | None) -> bool:
    return await conn.fetchval(Q["revoke_api_key"], key_id, user_id) is not None
