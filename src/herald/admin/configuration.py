"""The effective configuration as rows for the read-only settings page, secrets masked.

Every field of :class:`~herald.core.config.Settings` (nested sections included) is a row
named by its environment variable. A value is never shown, only ``set`` / ``not set``,
when the field is a ``SecretStr``, when its name says password, token, secret or key
(unless it is a number), when it is a mapping (headers and the like), or when it is a
URL carrying a password.
No framework here: plain data in, plain data out.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass
from email.utils import parseaddr
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, SecretStr

from herald.core.config import Settings

SET = "set"
NOT_SET = "not set"
_SENSITIVE_WORDS = ("password", "token", "secret", "key", "credential", "auth_header")


@dataclass(frozen=True, slots=True)
class ConfigRow:
    env: str  # HERALD_EMAIL__SENDER
    value: str
    masked: bool  # shown as set / not set only
    default: bool  # equal to the built-in default


@dataclass(frozen=True, slots=True)
class SenderIdentity:
    name: str
    address: str
    provider: str
    configured: bool  # HERALD_EMAIL__SENDER is set (else the development fallback)


def sender_identity(settings: Settings) -> SenderIdentity:
    name, address = parseaddr(settings.sender)
    return SenderIdentity(
        name=name,
        address=address or settings.sender,
        provider=settings.email.provider.value,
        configured=settings.email.sender is not None,
    )


def configuration_rows(settings: Settings) -> list[ConfigRow]:
    rows: list[ConfigRow] = []
    _walk(settings, "HERALD_", rows)
    return rows


def _walk(model: BaseModel, prefix: str, rows: list[ConfigRow]) -> None:
    for name, field in type(model).model_fields.items():
        value = getattr(model, name)
        env = prefix + name.upper()
        if isinstance(value, BaseModel) and not _is_secret_type(field.annotation):
            _walk(value, env + "__", rows)
            continue
        if _must_mask(name, field.annotation, value):
            shown = SET if _is_set(value) else NOT_SET
            rows.append(ConfigRow(env, shown, masked=True, default=False))
            continue
        rows.append(ConfigRow(env, _show(value), masked=False, default=value == field.default))


def _is_secret_type(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return any(_is_secret_type(arg) for arg in typing.get_args(annotation))
    return False


def _must_mask(name: str, annotation: Any, value: Any) -> bool:
    lowered = name.lower()
    # A number is no secret, whatever its name (token_ttl_hours).
    named = any(word in lowered for word in _SENSITIVE_WORDS) and not isinstance(value, int | float)
    return (
        _is_secret_type(annotation)
        or isinstance(value, SecretStr)
        or named
        or isinstance(value, dict)
        or _has_password(value)
    )


def _has_password(value: Any) -> bool:
    """A URL (or a list of them) with a password in its user part or its query."""
    if isinstance(value, list | tuple | set | frozenset):
        return any(_has_password(item) for item in value)
    if not isinstance(value, str) or "://" not in value:
        return False
    try:
        parts = urlsplit(value)
        if parts.password is not None:
            return True
    except ValueError:
        return True  # unparseable: do not risk showing it
    return any(key.lower() == "password" for key, _ in parse_qsl(parts.query))


def _is_set(value: Any) -> bool:
    if isinstance(value, SecretStr):
        return bool(value.get_secret_value())
    return value is not None and value not in ("", {})


def _show(value: Any) -> str:
    if value is None:
        return NOT_SET
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_show(item) for item in value) or "(none)"
    return str(value)
