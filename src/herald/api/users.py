"""``/api/v1/users`` (admins only, as the admin's users page): list, create, change a
role, deactivate and activate — through ``auth.accounts.UserAdmin`` and
``AuthService.create_user``, the services that page uses."""

from __future__ import annotations

import uuid
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from herald.api.access import Access, operation
from herald.api.idempotency import ApiRoute
from herald.api.pagination import Page
from herald.auth.domain import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH, Role, UserSummary
from herald.auth.web import auth_service, user_admin
from herald.web.state import State

router = APIRouter(prefix="/api/v1/users", tags=["users"], route_class=ApiRoute)


class User(BaseModel):
    id: uuid.UUID
    username: str
    role: Role
    active: bool
    disabled_at: datetime | None
    created_at: datetime
    password_changed_at: datetime
    sessions: int = Field(description="Signed-in browser sessions.")


class NewUser(BaseModel):
    model_config = ConfigDict(extra="forbid")

    username: str = Field(
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]*$",
        description="Letters, digits and . _ @ - (starting with a letter or digit).",
    )
    password: str = Field(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)
    role: Role = Role.EDITOR


class RoleChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


def user_json(user: UserSummary) -> User:
    return User(
        id=user.id,
        username=user.username,
        role=user.role,
        active=user.active,
        disabled_at=user.disabled_at,
        created_at=user.created_at,
        password_changed_at=user.password_changed_at,
        sessions=user.sessions,
    )


@router.get("", response_model=Page[User], **operation(Access.ADMIN))
async def list_users(state: State) -> Page[User]:
    """Every user (one page: a newsletter has a handful)."""
    users = await user_admin(state).list_users()
    return Page[User](items=[user_json(u) for u in users], next_cursor=None)


@router.post(
    "",
    status_code=201,
    response_model=User,
    **operation(Access.ADMIN_WRITE, errors=(400, 409, 415), idempotent=True),
)
async def create_user(body: NewUser, state: State, response: Response) -> User:
    """A new user (an editor unless ``role`` says admin); 409 for a taken username."""
    user_id = await auth_service(state).create_user(body.username, body.password, body.role)
    response.headers["Location"] = f"{router.prefix}/{user_id}"
    return user_json(await user_admin(state).get(user_id))


@router.get("/{user_id}", response_model=User, **operation(Access.ADMIN, errors=(400, 404)))
async def get_user(user_id: uuid.UUID, state: State) -> User:
    return user_json(await user_admin(state).get(user_id))


@router.put(
    "/{user_id}/role",
    response_model=User,
    **operation(Access.ADMIN_WRITE, errors=(400, 404, 409, 415)),
)
async def change_role(user_id: uuid.UUID, body: RoleChange, state: State) -> User:
    """409 when it would leave no active admin."""
    admin = user_admin(state)
    await admin.set_role(user_id, body.role)
    return user_json(await admin.get(user_id))


@router.post(
    "/{user_id}/deactivate",
    response_model=User,
    **operation(Access.ADMIN_WRITE, errors=(400, 404, 409), idempotent=True),
)
async def deactivate_user(user_id: uuid.UUID, state: State) -> User:
    """Sessions end; their API keys and tokens are refused while deactivated. 409 for the
    last active admin."""
    admin = user_admin(state)
    await admin.set_disabled(user_id, disabled=True)
    return user_json(await admin.get(user_id))


@router.post(
    "/{user_id}/activate",
    response_model=User,
    **operation(Access.ADMIN_WRITE, errors=(400, 404), idempotent=True),
)
async def activate_user(user_id: uuid.UUID, state: State) -> User:
    admin = user_admin(state)
    await admin.set_disabled(user_id, disabled=False)
    return user_json(await admin.get(user_id))
