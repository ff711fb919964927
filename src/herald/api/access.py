"""Who may call an operation of the JSON API: every route declares one :class:`Access`.

``operation(Access.WRITE, ...)`` gives a route decorator its dependencies (the check),
its documented error responses and the ``x-herald-access`` vendor extension that
``/openapi.json`` shows and ``tests/integration/test_api_access.py`` reads: a route under
``/api/v1`` without one fails that test, and each is called with too little access.

* ``read``: any user's API key or access token.
* ``write``: a key or token with the write scope (a read-only key gets 403).
* ``admin``: an admin's key or token (an editor's gets 403), read scope enough.
* ``admin_write``: an admin's, with the write scope.
* ``public``: no credentials (the token endpoint alone).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import Any

from fastapi import Depends
from fastapi.params import Depends as DependsParam

from herald.api.problems import problem_responses
from herald.auth.web import admin_writer, key_manager, principal, writer

ACCESS_EXTENSION = "x-herald-access"
IDEMPOTENT_EXTENSION = "x-herald-idempotent"


class Access(StrEnum):
    PUBLIC = "public"
    READ = "read"
    WRITE = "write"
    ADMIN = "admin"
    ADMIN_WRITE = "admin_write"


_CHECKS: dict[Access, Callable[..., Any]] = {
    Access.READ: principal,
    Access.WRITE: writer,
    Access.ADMIN: key_manager,
    Access.ADMIN_WRITE: admin_writer,
}

# The refusals each level can answer, whatever the operation does.
_REFUSALS = {
    Access.PUBLIC: (),
    Access.READ: (401,),
    Access.WRITE: (401, 403),
    Access.ADMIN: (401, 403),
    Access.ADMIN_WRITE: (401, 403),
}

IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes the request safe to retry: the first response is stored (24 hours, per user) "
        "and replayed for a request with the same key and payload; the same key with "
        "another payload is a 422, and a 409 while the first request is still running."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!#-~]+$"},
}


def operation(
    access: Access,
    *,
    errors: Iterable[int] = (),
    idempotent: bool = False,
    openapi_extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The keyword arguments of a route decorator for an operation open to ``access``.

    ``errors``: the statuses the operation itself answers besides the refusals of its
    access level (400, 404, 409 …). ``idempotent``: a POST that honours the
    ``Idempotency-Key`` header (documented here, done by :mod:`herald.api.idempotency`).
    """
    extra: dict[str, Any] = dict(openapi_extra or {})
    extra[ACCESS_EXTENSION] = access.value
    statuses = set(_REFUSALS[access]) | set(errors)
    if idempotent:
        extra[IDEMPOTENT_EXTENSION] = True
        extra.setdefault("parameters", []).append(IDEMPOTENCY_HEADER)
        statuses |= {400, 409, 422}
    dependencies: list[DependsParam] = []
    if access is not Access.PUBLIC:
        dependencies.append(Depends(_CHECKS[access]))
    return {
        "dependencies": dependencies,
        "openapi_extra": extra,
        "responses": problem_responses(sorted(statuses)),
    }


def declared_access(openapi_extra: dict[str, Any] | None) -> Access | None:
    raw = (openapi_extra or {}).get(ACCESS_EXTENSION)
    return Access(raw) if isinstance(raw, str) else None


def is_idempotent(openapi_extra: dict[str, Any] | None) -> bool:
    return bool((openapi_extra or {}).get(IDEMPOTENT_EXTENSION))
