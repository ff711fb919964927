"""User management by an admin: list, disable and enable, change a role, reset a password.

Creating a user is :meth:`AuthService.create_user` (shared with the CLI). Every change
here that could leave Herald without an active admin takes the active admins' row locks
first (``lock_active_admins``), so two admins demoting or disabling each other at the
same moment cannot both succeed.
"""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass

from herald.auth import repository
from herald.auth.domain import Role, UserSummary, check_new_password
from herald.auth.passwords import Passwords
from herald.core.db import Connection, Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.core.telemetry import get_logger

log = get_logger("herald.auth")

LAST_ADMIN = (
    "Herald needs at least one active admin: make another user an admin "
    "before you disable or demote this one."
)


class LastAdmin(Conflict):
    """The change would leave no active admin (409)."""

    def __init__(self) -> None:
        super().__init__(LAST_ADMIN)


@dataclass(frozen=True)
class UserAdmin:
    db: Database
    passwords: Passwords

    async def list_users(self) -> list[UserSummary]:
        async with self.db.connection() as conn:
            return await repository.list_users(conn)

    async def get(self, user_id: uuid.UUID) -> UserSummary:
        users = await self.list_users()
        for user in users:
            if user.id == user_id:
                return user
        raise NotFound("No such user.")

    async def set_disabled(self, user_id: uuid.UUID, *, disabled: bool) -> str:
        """Disable (every session ends; sessions, API keys and tokens are refused while
        disabled) or enable a user. Returns the username."""
        async with self.db.transaction() as conn:
            user = await self._find(conn, user_id)
            if disabled:
                await _keep_an_admin(conn, user_id)
            await repository.set_user_disabled(conn, user_id, disabled)
            if disabled:
                await repository.delete_all_sessions(conn, user_id)
        log.info("user disabled" if disabled else "user enabled", username=user)
        return user

    async def set_role(self, user_id: uuid.UUID, role: Role) -> str:
        async with self.db.transaction() as conn:
            user = await self._find(conn, user_id)
            if role is not Role.ADMIN:
                await _keep_an_admin(conn, user_id)
            await repository.set_user_role(conn, user_id, role)
        log.info("user role changed", username=user, role=role.value)
        return user

    async def reset_password(self, user_id: uuid.UUID, new: str, check: str) -> str:
        """The admin sets a new password; every session of the user ends and every
        access token issued before is refused (API keys are left alone)."""
        if not hmac.compare_digest(new.encode(), check.encode()):
            raise ValidationError(
                "You entered two different new passwords - the field values must match.",
                field="new_password",
            )
        check_new_password(new)
        password_hash = await self.passwords.hash(new)
        async with self.db.transaction() as conn:
            user = await self._find(conn, user_id)
            await repository.change_password(conn, user_id, password_hash)
            await repository.delete_all_sessions(conn, user_id)
            await repository.clear_failures(conn, user.lower())
        log.info("password reset by an admin", username=user)
        return user

    async def _find(self, conn: Connection, user_id: uuid.UUID) -> str:
        found = await repository.find_user_by_id(conn, user_id)
        if found is None:
            raise NotFound("No such user.")
        return found.username


async def _keep_an_admin(conn: Connection, losing: uuid.UUID) -> None:
    """Refuse when ``losing`` is the only active admin left."""
    admins = await repository.lock_active_admins(conn)
    if admins == {losing}:
        raise LastAdmin
