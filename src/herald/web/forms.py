"""Read an urlencoded or multipart form as plain strings (files are refused)."""

from __future__ import annotations

from starlette.datastructures import FormData
from starlette.requests import Request

from herald.core.errors import UnsupportedMediaType
from herald.web.middleware import BODY_LIMIT_SCOPE_KEY

FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data", ""}


async def _form(request: Request, max_fields: int) -> FormData:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in FORM_TYPES:
        raise UnsupportedMediaType(
            f"unsupported content type {media_type!r}: send an HTML form "
            "(application/x-www-form-urlencoded)"
        )
    # One field may be as large as the route lets the whole body be (Starlette's own
    # default, 1 MiB a field, would refuse a 2 MiB issue body with a 400).
    max_part_size = request.scope.get(BODY_LIMIT_SCOPE_KEY, 1024 * 1024)
    return await request.form(max_files=0, max_fields=max_fields, max_part_size=max_part_size)


async def read_form(request: Request, *, max_fields: int = 100) -> dict[str, str]:
    form = await _form(request, max_fields)
    return {key: value for key, value in form.items() if isinstance(value, str)}


async def read_form_multi(request: Request, *, max_fields: int = 100) -> dict[str, list[str]]:
    """``read_form`` for forms that repeat a field (checkboxes): every value of each
    field, in order."""
    fields: dict[str, list[str]] = {}
    for key, value in (await _form(request, max_fields)).multi_items():
        if isinstance(value, str):
            fields.setdefault(key, []).append(value)
    return fields
