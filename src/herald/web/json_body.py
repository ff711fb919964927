"""One strict reader for JSON request bodies, used by every route that accepts JSON.

``json.loads`` alone lets pathological bodies through or turns them into 500s: deep
nesting raises ``RecursionError``, a 5,000-digit number ``ValueError`` from ``int``,
``1e999999`` becomes ``inf``, ``NaN`` is accepted, duplicate keys silently keep the
last value (a proxy that reads the first one sees another request), a lone ``\\ud800``
escape makes a string that cannot be encoded, ``\\u0000`` one that Postgres cannot
store. Here each of those is a ``ValidationError`` (400) that names the problem.

* ``read_json`` / ``read_json_object``: for handlers that read the body themselves.
* ``StrictJSONRoute``: the route class of the JSON API, so the bodies FastAPI parses
  into models go through the same reader first.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from herald.core.errors import ValidationError

MAX_NUMBER_DIGITS = 100


def is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValidationError(f"the JSON body has the key {_short(key)!r} more than once")
        result[key] = value
    return result


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise ValidationError(
            f"the JSON body has a number with more than {MAX_NUMBER_DIGITS} digits"
        )
    return int(text)


def _float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValidationError(f"the JSON body has a number out of range: {_short(text)}")
    return value


def _constant(name: str) -> Any:
    raise ValidationError(f"the request body is not valid JSON: {name} is not a JSON value")


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _check_strings(value: Any) -> None:
    """Every string (keys included) must be storable text: no lone surrogate, no NUL."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str) and not item.isascii():
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError(
                    "the JSON body has a \\u escape that is not a character (a lone surrogate)"
                ) from None
        if isinstance(item, str) and "\x00" in item:
            raise ValidationError("the JSON body has a NUL character (\\u0000) in a string")


def parse_json(body: bytes) -> Any:
    """The value of a JSON body (RFC 8259: UTF-8, no duplicate keys), or ValidationError."""
    if not body.strip():
        raise ValidationError("the request body is empty: send a JSON object")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(
            f"the JSON body is not UTF-8 (byte 0x{body[exc.start]:02x} at position {exc.start})"
        ) from None
    try:
        value = json.loads(
            text,
            object_pairs_hook=_object,
            parse_int=_integer,
            parse_float=_float,
            parse_constant=_constant,
        )
    except json.JSONDecodeError as exc:
        raise ValidationError(
            f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except RecursionError:
        raise ValidationError("the JSON body is nested too deeply") from None
    except ValueError:  # a conversion the hooks did not foresee
        raise ValidationError("the request body is not valid JSON") from None
    _check_strings(value)
    return value


async def read_json(request: Request) -> Any:
    """Parse the body once (cached on the request, also for FastAPI's own ``json()``)."""
    if isinstance(request, StrictJSONRequest):
        return await request.json()
    return parse_json(await request.body())


async def read_json_object(request: Request, example: str) -> dict[str, Any]:
    """The body as a JSON object; ``example`` shows the expected shape in the message."""
    value = await read_json(request)
    if not isinstance(value, dict):
        raise ValidationError(f"the JSON body must be an object like {example}")
    return value


class StrictJSONRequest(Request):
    """A request whose ``json()`` is :func:`parse_json`."""

    async def json(self) -> Any:
        if not hasattr(self, "_strict_json"):
            self._strict_json = parse_json(await self.body())
        return self._strict_json


class StrictJSONRoute(APIRoute):
    """Parses a JSON body with :func:`parse_json` before FastAPI's handler runs.

    Before, not inside: FastAPI's body parsing turns any exception but its own into a
    vague 400 ("There was an error parsing the body"); raised here, the
    ``ValidationError`` reaches ``web/errors.py`` with its message.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict_handler(request: Request) -> Response:
            return await handler(await strict_request(request))

        return strict_handler


async def strict_request(request: Request) -> StrictJSONRequest:
    """``request`` as a :class:`StrictJSONRequest`, its JSON body (if any) already parsed:
    a body that is not strict JSON is a ``ValidationError`` here."""
    strict = StrictJSONRequest(request.scope, request.receive)
    if is_json(strict) and request.method in {"POST", "PUT", "PATCH", "DELETE"}:
        await strict.json()
    return strict
