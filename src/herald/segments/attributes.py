"""A subscriber's attributes: a free-form JSON object (``subscriptions.attributes``) that
segments filter on and issues show (``{{ subscriber.attributes.city }}``).

The rules, checked here for every writer (API, admin page, import):

* a JSON object at the top level; its keys, and the keys of objects inside it, are 1 to 64
  characters ``[A-Za-z_][A-Za-z0-9_]*`` (what a template or a filter path can name);
* nested at most :data:`MAX_DEPTH` levels (the object itself is level 1), checked without
  recursion, so a value 10,000 levels deep is a 400, not a ``RecursionError``;
* at most :data:`MAX_BYTES` bytes as compact JSON (UTF-8); numbers finite; strings without
  NUL (Postgres cannot store it).

A change (``PATCH``) merges at the top level: each key given replaces the stored value,
``null`` deletes the key (so null is never stored at the top level), keys not given stay.
"""

from __future__ import annotations

import json
import math
from typing import Any

from herald.core.errors import ValidationError
from herald.segments.domain import KEY  # what a filter's attribute path can name

MAX_DEPTH = 5
MAX_BYTES = 16 * 1024
FIELD = "attributes"


def _fail(message: str) -> ValidationError:
    return ValidationError(f"attributes: {message}", field=FIELD)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def check_key(key: object, where: str = "") -> str:
    if not isinstance(key, str) or not KEY.fullmatch(key):
        shown = _short(key) if isinstance(key, str) else repr(key)
        raise _fail(
            f"the key {shown!r}{where} is not an attribute name: 1 to 64 letters, digits or _, "
            "not starting with a digit"
        )
    return key


def _check_tree(value: object) -> None:
    """Every nested value: depth, keys, numbers and strings (iteratively)."""
    pending: list[tuple[object, int, str]] = [(value, 1, "")]
    while pending:
        item, depth, where = pending.pop()
        if isinstance(item, dict | list):
            if depth > MAX_DEPTH:
                raise _fail(f"nested more than {MAX_DEPTH} levels deep{where}")
            if isinstance(item, dict):
                for key, inner in item.items():
                    check_key(key, where)
                    pending.append((inner, depth + 1, where or f" (in {key})"))
            else:
                pending.extend((inner, depth + 1, where) for inner in item)
        elif isinstance(item, float) and not math.isfinite(item):
            raise _fail(f"a number is out of range{where}")
        elif isinstance(item, str) and "\x00" in item:
            raise _fail(f"a string holds a NUL character{where}")
        elif item is not None and not isinstance(item, str | int | float | bool):
            raise _fail(f"a value is not JSON{where}")


def size(attributes: dict[str, Any]) -> int:
    """Bytes as stored-compact JSON (UTF-8)."""
    return len(json.dumps(attributes, separators=(",", ":"), ensure_ascii=False).encode())


def parse_attributes(raw: object) -> dict[str, Any]:
    """``raw`` (decoded JSON) as a whole attribute object, or ValidationError."""
    if not isinstance(raw, dict):
        raise _fail('must be a JSON object such as {"city": "Paris"}')
    _check_tree(raw)
    if None in raw.values():
        raise _fail("a top-level value is null: leave the key out instead")
    if size(raw) > MAX_BYTES:
        raise _fail(f"are larger than {MAX_BYTES // 1024} KiB as JSON")
    return raw


def parse_change(raw: object) -> dict[str, Any]:
    """A change to merge (``null`` deletes a key), checked as far as it can be alone."""
    if not isinstance(raw, dict):
        raise _fail('must be a JSON object such as {"city": "Paris", "old_key": null}')
    _check_tree(raw)
    if size(raw) > MAX_BYTES:
        raise _fail(f"are larger than {MAX_BYTES // 1024} KiB as JSON")
    return raw


def merge(current: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """``current`` with ``change`` applied at the top level, checked whole."""
    merged = {**current, **change}
    return parse_attributes({k: v for k, v in merged.items() if v is not None})
