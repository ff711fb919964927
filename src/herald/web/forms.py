"""Read an urlencoded or multipart form as plain strings (files are refused)."""

from __future__ import annotations

from starlette.requests import Request

from herald.core.errors import UnsupportedMediaType

FORM_TYPES = {"application/x-www-form-urlencoded", "multipart/form-data", ""}


async def read_form(request: Request, *, max_fields: int = 100) -> dict[str, str]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in FORM_TYPES:
        raise UnsupportedMediaType(
            f"unsupported content type {media_type!r}: send an HTML form "
            "(application/x-www-form-urlencoded)"
        )
    form = await request.form(max_files=0, max_fields=max_fields)
    return {key: value for key, value in form.items() if isinstance(value, str)}
