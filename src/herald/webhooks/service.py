"""Outgoing webhooks' use cases: endpoints (create — its secret returned once —, change,
enable and disable, rotate the secret, delete), an endpoint's recent messages and
attempts (its failure view), and the manual replay of a failed message."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace

from herald.core.config import Environment, Settings
from herald.core.db import Connection, Database
from herald.core.errors import Conflict, NotFound
from herald.core.telemetry import get_logger
from herald.webhooks import repository
from herald.webhooks.domain import (
    DISABLED_PENDING,
    Attempt,
    Endpoint,
    EndpointDraft,
    Message,
    MessageStatus,
    new_secret,
    parse_description,
    parse_event_types,
    parse_url,
)

log = get_logger("herald.webhooks")

MAX_ENDPOINTS = 50
REPLAY_BATCH = 10_000  # failed messages queued again per "replay all" (one statement)
NOT_FOUND = "No such webhook endpoint."


@dataclass(frozen=True, slots=True)
class Created:
    endpoint: Endpoint
    secret: str  # shown once: the caller's only chance to copy it


@dataclass(frozen=True, slots=True)
class EndpointView:
    endpoint: Endpoint
    messages: list[Message]
    attempts: list[Attempt]
    more: bool  # older messages exist past this page


class WebhookService:
    def __init__(self, db: Database, settings: Settings) -> None:
        self._db = db
        self._settings = settings

    @property
    def development(self) -> bool:
        return self._settings.env is Environment.DEVELOPMENT

    def draft(
        self, *, url: str, description: str, event_types: list[str], enabled: bool = True
    ) -> EndpointDraft:
        """A checked endpoint (``ValidationError`` naming the problem)."""
        return EndpointDraft.parse(
            url=url,
            description=description,
            event_types=event_types,
            enabled=enabled,
            development=self.development,
        )

    async def endpoints(self) -> list[Endpoint]:
        async with self._db.connection() as conn:
            return await repository.list_endpoints(conn, MAX_ENDPOINTS)

    async def get(self, endpoint_id: uuid.UUID) -> Endpoint:
        async with self._db.connection() as conn:
            found = await repository.get_endpoint(conn, endpoint_id)
        if found is None:
            raise NotFound(NOT_FOUND)
        return found

    async def create(self, draft: EndpointDraft) -> Created:
        secret = new_secret()
        async with self._db.transaction() as conn:
            if await repository.count_endpoints(conn) >= MAX_ENDPOINTS:
                raise Conflict(f"Herald keeps at most {MAX_ENDPOINTS} webhook endpoints.")
            endpoint_id = await repository.insert_endpoint(conn, draft, secret)
            endpoint = await repository.get_endpoint(conn, endpoint_id)
        assert endpoint is not None
        log.info("webhook endpoint created", endpoint_id=str(endpoint_id))
        return Created(endpoint, secret)

    async def change(self, endpoint_id: uuid.UUID, draft: EndpointDraft) -> Endpoint:
        async with self._db.transaction() as conn:
            return await _save(conn, endpoint_id, draft)

    async def patch(
        self,
        endpoint_id: uuid.UUID,
        *,
        url: str | None = None,
        description: str | None = None,
        event_types: list[str] | None = None,
        enabled: bool | None = None,
    ) -> Endpoint:
        """The fields given changed (each checked), the others kept as they are.

        Read and written in one transaction with the row locked, so two changes of
        different fields made at the same time both stay (neither writes back the
        other's old value).
        """
        async with self._db.transaction() as conn:
            current = await repository.lock_endpoint(conn, endpoint_id)
            if current is None:
                raise NotFound(NOT_FOUND)
            draft = replace(
                current,
                url=current.url if url is None else parse_url(url, development=self.development),
                description=current.description
                if description is None
                else parse_description(description),
                event_types=current.event_types
                if event_types is None
                else parse_event_types(event_types),
                enabled=current.enabled if enabled is None else enabled,
            )
            return await _save(conn, endpoint_id, draft)

    async def set_enabled(self, endpoint_id: uuid.UUID, *, enabled: bool) -> Endpoint:
        return await self.patch(endpoint_id, enabled=enabled)

    async def rotate_secret(self, endpoint_id: uuid.UUID) -> str:
        """A new secret, in force from the next attempt; returned once."""
        secret = new_secret()
        async with self._db.transaction() as conn:
            if not await repository.set_secret(conn, endpoint_id, secret):
                raise NotFound(NOT_FOUND)
        log.info("webhook secret rotated", endpoint_id=str(endpoint_id))
        return secret

    async def delete(self, endpoint_id: uuid.UUID) -> None:
        async with self._db.transaction() as conn:
            if not await repository.delete_endpoint(conn, endpoint_id):
                raise NotFound(NOT_FOUND)
        log.info("webhook endpoint deleted", endpoint_id=str(endpoint_id))

    async def view(
        self,
        endpoint_id: uuid.UUID,
        *,
        before: int | None = None,
        status: MessageStatus | None = None,
        limit: int = 50,
        attempts: int = 20,
    ) -> EndpointView:
        """The endpoint, a page of its messages (newest first) and its latest attempts."""
        async with self._db.connection() as conn:
            endpoint = await repository.get_endpoint(conn, endpoint_id)
            if endpoint is None:
                raise NotFound(NOT_FOUND)
            messages = await repository.recent_messages(
                conn, endpoint_id, before=before, status=status, limit=limit + 1
            )
            recent = await repository.recent_attempts(
                conn, endpoint_id, message_id=None, limit=attempts
            )
        return EndpointView(endpoint, messages[:limit], recent, len(messages) > limit)

    async def message(
        self, endpoint_id: uuid.UUID, message_id: int
    ) -> tuple[Message, list[Attempt]]:
        async with self._db.connection() as conn:
            found = await repository.get_message(conn, endpoint_id, message_id)
            if found is None:
                raise NotFound("No such webhook message.")
            attempts = await repository.recent_attempts(
                conn, endpoint_id, message_id=message_id, limit=100
            )
        return found, attempts

    async def replay(self, endpoint_id: uuid.UUID, message_id: int) -> None:
        """A failed message queued again at once, its attempts counted afresh."""
        async with self._db.transaction() as conn:
            if await repository.replay_message(conn, endpoint_id, message_id):
                log.info("webhook message replayed", message_id=message_id)
                return
            endpoint = await repository.get_endpoint(conn, endpoint_id)
            found = await repository.get_message(conn, endpoint_id, message_id)
        if endpoint is None or found is None:
            raise NotFound("No such webhook message.")
        if not endpoint.enabled:
            raise Conflict("The endpoint is disabled: enable it first, then replay.")
        raise Conflict(f"Only a failed message can be replayed; this one is {found.status}.")

    async def replay_failed(self, endpoint_id: uuid.UUID) -> int:
        """Up to :data:`REPLAY_BATCH` failed messages queued again, oldest first; how many."""
        async with self._db.transaction() as conn:
            endpoint = await repository.get_endpoint(conn, endpoint_id)
            if endpoint is None:
                raise NotFound(NOT_FOUND)
            if not endpoint.enabled:
                raise Conflict("The endpoint is disabled: enable it first, then replay.")
            count = await repository.replay_failed(conn, endpoint_id, REPLAY_BATCH)
        log.info("webhook messages replayed", endpoint_id=str(endpoint_id), count=count)
        return count


async def _save(conn: Connection, endpoint_id: uuid.UUID, draft: EndpointDraft) -> Endpoint:
    """The draft written over the endpoint; disabling fails its waiting messages."""
    enabled = await repository.update_endpoint(conn, endpoint_id, draft)
    if enabled is None:
        raise NotFound(NOT_FOUND)
    if not enabled:
        await repository.fail_pending(conn, endpoint_id, DISABLED_PENDING)
    endpoint = await repository.get_endpoint(conn, endpoint_id)
    assert endpoint is not None
    return endpoint
