"""A response kept in Postgres and answered again: the idempotency keys of the admin
forms (``admin/idempotency.py``) and of the JSON API (``api/idempotency.py``) store the
first response to a key and replay it for a retry."""

from __future__ import annotations

import json
from collections.abc import Collection

from starlette.responses import Response


def stored_headers(response: Response, names: Collection[str]) -> str:
    """The headers of ``response`` named in ``names`` (lower case), as the JSON text kept
    in ``idempotency_keys.response_headers``; the others (cookies, dates) are not replayed."""
    return json.dumps(
        [
            [name.decode("latin-1"), value.decode("latin-1")]
            for name, value in response.raw_headers
            if name.decode("latin-1").lower() in names
        ]
    )


def rebuilt(status: int, headers: str | None, body: bytes | None) -> Response:
    """The stored response, byte for byte with the headers kept by :func:`stored_headers`."""
    response = Response(bytes(body or b""), status_code=status)
    for name, value in json.loads(headers or "[]"):
        response.raw_headers.append((name.encode("latin-1"), value.encode("latin-1")))
    return response
