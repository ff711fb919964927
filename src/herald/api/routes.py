"""The JSON API under /api/v1: authentication, identity and API keys.

The other resources have modules of their own (``subscribers`` …); every router of the
API uses :class:`~herald.api.idempotency.ApiRoute` and declares each operation's access
with :func:`~herald.api.access.operation`.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from herald.api.access import Access, operation
from herald.api.idempotency import ApiRoute
from herald.auth.domain import Scope
from herald.auth.service import BEARER, AuthenticationFailed
from herald.auth.web import Reader, Writer, auth_service
from herald.core.errors import Forbidden, Unauthorized, ValidationError
from herald.web.client import client_ip
from herald.web.forms import read_form
from herald.web.state import State

PREFIX = "/api/v1"
# The sections of /docs, in this order (docs/API.md says more).
TAGS = [
    {"name": "auth", "description": "Access tokens, who you are, API keys (admins)."},
    {"name": "subscribers", "description": "Keyset pages, filters, search; double opt-in."},
    {"name": "issues", "description": "Drafts, previews, test sends, publishing, progress."},
    {"name": "users", "description": "Admins only: users and their roles."},
    {"name": "segments", "description": "Saved filters over subscribers and who they select."},
    {"name": "lists", "description": "Lists (newsletters), their members and consent."},
    {"name": "suppressions", "description": "Addresses never mailed again: add, list, lift."},
    {"name": "webhooks", "description": "Admins only: outgoing webhook endpoints, messages."},
]
# Every JSON body goes through Herald's strict reader (400 naming the problem).
router = APIRouter(prefix=PREFIX, tags=["auth"], route_class=ApiRoute)


# The handler reads the form itself; this tells /docs what to send.
TOKEN_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["username", "password"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password"]},
                        "username": {"type": "string"},
                        "password": {"type": "string", "format": "password"},
                    },
                }
            }
        },
    }
}


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
    expires_in: int = Field(description="Seconds until the token expires.")


@router.post(
    "/auth/token",
    response_model=AccessToken,
    **operation(Access.PUBLIC, errors=(400, 401, 415, 429), openapi_extra=TOKEN_FORM),
)
async def token(request: Request, state: State) -> Response:
    """OAuth2 password grant: form fields ``username``, ``password`` (``grant_type=password``)."""
    form = await read_form(request)
    if form.get("grant_type", "password") != "password":
        raise ValidationError("grant_type must be 'password'", field="grant_type")
    service = auth_service(state)
    try:
        user = await service.authenticate(
            form.get("username", ""), form.get("password", ""), client_ip(request)
        )
    except AuthenticationFailed:
        raise Unauthorized("Authentication failed", challenge=BEARER) from None
    issued = service.issue_token(user)
    return JSONResponse(
        {
            "access_token": issued.access_token,
            "token_type": "bearer",
            "expires_in": issued.expires_in,
        },
        headers={"Cache-Control": "no-store"},
    )


class Me(BaseModel):
    id: uuid.UUID
    username: str
    scope: Scope
    via: str = Field(description="`api_key` or `jwt`.")


@router.get("/me", response_model=Me, **operation(Access.READ))
async def me(who: Reader) -> dict[str, Any]:
    return {"id": str(who.user_id), "username": who.username, "scope": who.scope, "via": who.via}


class NewApiKey(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    scope: Scope = Scope.READ


def _key_json(key: Any) -> dict[str, Any]:
    return {
        "id": str(key.id),
        "name": key.name,
        "prefix": key.prefix,
        "scope": key.scope,
        "created_at": key.created_at.isoformat(),
        "last_used_at": key.last_used_at.isoformat() if key.last_used_at else None,
        "revoked": key.revoked_at is not None,
    }


class ApiKey(BaseModel):
    id: uuid.UUID
    name: str
    prefix: str
    scope: Scope
    created_at: str
    last_used_at: str | None
    revoked: bool


class ApiKeys(BaseModel):
    api_keys: list[ApiKey]


class CreatedApiKey(BaseModel):
    id: uuid.UUID
    key: str = Field(description="The key itself, shown this once.")
    scope: Scope


@router.get("/api-keys", response_model=ApiKeys, **operation(Access.ADMIN))
async def list_api_keys(who: Reader, state: State) -> dict[str, Any]:
    keys = await auth_service(state).list_api_keys(who.user_id)
    return {"api_keys": [_key_json(k) for k in keys]}


@router.post(
    "/api-keys",
    status_code=201,
    response_model=CreatedApiKey,
    **operation(Access.ADMIN_WRITE, errors=(400, 415)),
)
async def create_api_key(body: NewApiKey, who: Writer, state: State) -> dict[str, Any]:
    if who.via == "api_key":
        # Otherwise a leaked key could mint permanent successors and outlive its revocation.
        raise Forbidden(
            "API keys cannot create API keys: use an access token from /api/v1/auth/token"
        )
    key_id, key = await auth_service(state).create_api_key(who.user_id, body.name, body.scope)
    return {"id": str(key_id), "key": key, "scope": body.scope}


@router.delete(
    "/api-keys/{key_id}", status_code=204, **operation(Access.ADMIN_WRITE, errors=(400, 404))
)
async def revoke_api_key(key_id: uuid.UUID, who: Writer, state: State) -> Response:
    await auth_service(state).revoke_api_key(key_id, who.user_id)
    return Response(status_code=204)
