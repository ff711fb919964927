"""``/api/v1/webhooks``: outgoing webhook endpoints (admins only) — list, create (its secret
returned this once), get, change, delete, rotate the secret —, an endpoint's messages
(keyset pages, newest first, by status) with their attempts, and the replay of a failed
message. Each handler: parse → one call of ``webhooks.service`` → response."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import Response

from herald.api import pagination
from herald.api.access import Access, operation
from herald.api.idempotency import ApiRoute
from herald.api.pagination import DEFAULT_LIMIT, CursorParam, Limit, Page
from herald.core.errors import NotFound
from herald.web.state import AppState, State
from herald.webhooks.domain import (
    MAX_DESCRIPTION,
    MAX_URL,
    Attempt,
    Endpoint,
    EventType,
    Message,
    MessageStatus,
)
from herald.webhooks.service import WebhookService

KIND = "webhook-messages"
NEWEST = "newest"
router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"], route_class=ApiRoute)

NO_NUL = r"^[^\x00]*$"
Url = Annotated[str, Field(min_length=1, max_length=MAX_URL, pattern=NO_NUL)]
Description = Annotated[str, Field(max_length=2 * MAX_DESCRIPTION, pattern=NO_NUL)]
Types = Annotated[list[EventType], Field(min_length=1, max_length=len(EventType))]


class EndpointOut(BaseModel):
    id: uuid.UUID
    url: str
    description: str
    event_types: list[str]
    enabled: bool
    disabled_reason: str | None = Field(
        description="Set when Herald disabled the endpoint because it kept failing."
    )
    disabled_at: datetime | None
    consecutive_failures: int = Field(description="Attempts in a row that failed.")
    failing_since: datetime | None
    pending: int = Field(description="Messages waiting to be sent (or retried).")
    failed: int = Field(description="Messages given up on: replay them one by one.")
    created_at: datetime
    updated_at: datetime


class CreatedEndpoint(EndpointOut):
    secret: str = Field(
        description="The Standard Webhooks signing secret (`whsec_…`), shown this once."
    )


class Secret(BaseModel):
    secret: str = Field(description="The new signing secret, in force from the next attempt.")


class Endpoints(BaseModel):
    items: list[EndpointOut]


class NewEndpointBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url = Field(description="https:// (http:// only in development, to a local host).")
    description: Description = ""
    event_types: Types
    enabled: bool = True


class EndpointChangeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Url | None = None
    description: Description | None = None
    event_types: Types | None = None
    enabled: bool | None = Field(
        default=None, description="true also clears an automatic disable and its count."
    )


class AttemptOut(BaseModel):
    id: int
    attempted_at: datetime
    duration_ms: int
    status_code: int | None = Field(description="The receiver's HTTP status; null: no answer.")
    error: str
    response_excerpt: str = Field(description="At most 500 characters of the response body.")


class MessageOut(BaseModel):
    id: int
    webhook_id: str = Field(description="The `webhook-id` header, the same on every attempt.")
    event_type: str
    status: MessageStatus
    attempts: int
    payload: dict[str, Any]
    created_at: datetime
    next_attempt_at: datetime | None = Field(description="For a pending message.")
    finished_at: datetime | None
    last_status: int | None
    last_error: str | None


class MessageDetail(MessageOut):
    attempt_log: list[AttemptOut] = Field(description="Newest first.")


def endpoint_json(endpoint: Endpoint) -> dict[str, Any]:
    return {
        "id": endpoint.id,
        "url": endpoint.url,
        "description": endpoint.description,
        "event_types": list(endpoint.event_types),
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "disabled_at": endpoint.disabled_at,
        "consecutive_failures": endpoint.consecutive_failures,
        "failing_since": endpoint.failing_since,
        "pending": endpoint.pending,
        "failed": endpoint.failed,
        "created_at": endpoint.created_at,
        "updated_at": endpoint.updated_at,
    }


def message_json(message: Message) -> dict[str, Any]:
    pending = message.status is MessageStatus.PENDING
    return {
        "id": message.id,
        "webhook_id": message.webhook_id,
        "event_type": message.event_type,
        "status": message.status,
        "attempts": message.attempts,
        "payload": json.loads(message.payload),
        "created_at": message.created_at,
        "next_attempt_at": message.available_at if pending else None,
        "finished_at": message.finished_at,
        "last_status": message.last_status,
        "last_error": message.last_error,
    }


def attempt_json(attempt: Attempt) -> AttemptOut:
    return AttemptOut(
        id=attempt.id,
        attempted_at=attempt.attempted_at,
        duration_ms=attempt.duration_ms,
        status_code=attempt.status_code,
        error=attempt.error,
        response_excerpt=attempt.response_excerpt,
    )


def _service(state: AppState) -> WebhookService:
    return WebhookService(state.db, state.settings)


@router.get("", response_model=Endpoints, **operation(Access.ADMIN))
async def list_endpoints(state: State) -> dict[str, Any]:
    """Every endpoint (at most 50), newest first. Secrets are never listed."""
    return {"items": [endpoint_json(e) for e in await _service(state).endpoints()]}


@router.post(
    "",
    status_code=201,
    response_model=CreatedEndpoint,
    **operation(Access.ADMIN_WRITE, errors=(400, 409, 415)),
)
async def create_endpoint(body: NewEndpointBody, state: State, response: Response) -> Any:
    """A new endpoint and its signing secret, returned this once (not idempotent: a
    replayed response would keep the secret). `409` past 50 endpoints."""
    service = _service(state)
    draft = service.draft(
        url=body.url,
        description=body.description,
        event_types=[t.value for t in body.event_types],
        enabled=body.enabled,
    )
    created = await service.create(draft)
    response.headers["Location"] = f"{router.prefix}/{created.endpoint.id}"
    return {**endpoint_json(created.endpoint), "secret": created.secret}


@router.get(
    "/{endpoint_id}", response_model=EndpointOut, **operation(Access.ADMIN, errors=(400, 404))
)
async def get_endpoint(endpoint_id: uuid.UUID, state: State) -> dict[str, Any]:
    return endpoint_json(await _service(state).get(endpoint_id))


@router.patch(
    "/{endpoint_id}",
    response_model=EndpointOut,
    **operation(Access.ADMIN_WRITE, errors=(400, 404, 415)),
)
async def change_endpoint(
    endpoint_id: uuid.UUID, body: EndpointChangeBody, state: State
) -> dict[str, Any]:
    """Change what is given. Disabling fails the waiting messages (replayable later)."""
    changed = await _service(state).patch(
        endpoint_id,
        url=body.url,
        description=body.description,
        event_types=None if body.event_types is None else [t.value for t in body.event_types],
        enabled=body.enabled,
    )
    return endpoint_json(changed)


@router.delete(
    "/{endpoint_id}", status_code=204, **operation(Access.ADMIN_WRITE, errors=(400, 404))
)
async def delete_endpoint(endpoint_id: uuid.UUID, state: State) -> Response:
    """The endpoint, its messages and their attempts."""
    await _service(state).delete(endpoint_id)
    return Response(status_code=204)


@router.post(
    "/{endpoint_id}/secret",
    response_model=Secret,
    **operation(Access.ADMIN_WRITE, errors=(400, 404)),
)
async def rotate_secret(endpoint_id: uuid.UUID, state: State) -> Secret:
    """A new signing secret, returned this once; the old one stops at once."""
    return Secret(secret=await _service(state).rotate_secret(endpoint_id))


@router.get(
    "/{endpoint_id}/messages",
    response_model=Page[MessageOut],
    **operation(Access.ADMIN, errors=(400, 404)),
)
async def list_messages(
    endpoint_id: uuid.UUID,
    state: State,
    status: Annotated[MessageStatus | None, Query(description="Only these.")] = None,
    limit: Limit = DEFAULT_LIMIT,
    cursor: CursorParam = None,
) -> Page[MessageOut]:
    """The endpoint's messages, newest first."""
    order = f"{NEWEST}:{endpoint_id}:{status or 'all'}"
    before = pagination.decode_id(state.settings, KIND, cursor, order) if cursor else None
    view = await _service(state).view(
        endpoint_id, before=before, status=status, limit=limit, attempts=0
    )
    last = view.messages[-1].id if view.more and view.messages else None
    return Page[MessageOut](
        items=[MessageOut(**message_json(m)) for m in view.messages],
        next_cursor=pagination.encode_id(state.settings, KIND, last, order) if last else None,
    )


@router.get(
    "/{endpoint_id}/messages/{message_id}",
    response_model=MessageDetail,
    **operation(Access.ADMIN, errors=(400, 404)),
)
async def get_message(endpoint_id: uuid.UUID, message_id: int, state: State) -> MessageDetail:
    message, attempts = await _service(state).message(endpoint_id, _message_id(message_id))
    return MessageDetail(**message_json(message), attempt_log=[attempt_json(a) for a in attempts])


@router.post(
    "/{endpoint_id}/messages/{message_id}/replay",
    status_code=202,
    response_model=MessageOut,
    **operation(Access.ADMIN_WRITE, errors=(400, 404, 409), idempotent=True),
)
async def replay_message(endpoint_id: uuid.UUID, message_id: int, state: State) -> MessageOut:
    """A failed message queued again at once, its attempts counted afresh (same
    `webhook-id`). `409` when it has not failed or the endpoint is disabled."""
    service = _service(state)
    await service.replay(endpoint_id, _message_id(message_id))
    message, _ = await service.message(endpoint_id, message_id)
    return MessageOut(**message_json(message))


class Replayed(BaseModel):
    replayed: int = Field(description="Failed messages queued again (at most 10,000 a call).")


@router.post(
    "/{endpoint_id}/replay-failed",
    response_model=Replayed,
    **operation(Access.ADMIN_WRITE, errors=(400, 404, 409), idempotent=True),
)
async def replay_failed(endpoint_id: uuid.UUID, state: State) -> Replayed:
    """The endpoint's failed messages queued again, oldest first, at most 10,000 a call
    (call again while `replayed` is 10,000). `409` while the endpoint is disabled."""
    return Replayed(replayed=await _service(state).replay_failed(endpoint_id))


def _message_id(raw: int) -> int:
    if not 0 < raw < 2**63:
        raise NotFound("No such webhook message.")
    return raw
