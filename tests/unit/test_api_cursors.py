"""The API's keyset cursors are opaque and signed: a forged, garbled or foreign one is a
400 naming ``cursor`` (ValidationError), never a crash."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
from pydantic import SecretStr

from herald.api import pagination
from herald.core.config import Settings
from herald.core.errors import ValidationError
from herald.subscriptions.listing import Cursor

SETTINGS = Settings(secret_key=SecretStr("k" * 40))
OTHER = Settings(secret_key=SecretStr("o" * 40))
CURSOR = Cursor(datetime(2026, 5, 1, 12, 30, tzinfo=UTC), uuid.uuid4())


def test_a_cursor_round_trips() -> None:
    raw = pagination.encode(SETTINGS, "subscribers", CURSOR, "newest")
    assert pagination.decode(SETTINGS, "subscribers", raw, "newest") == CURSOR
    assert str(CURSOR.id) not in raw  # opaque enough: not the id in the clear


def forged(payload: object) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    return f"{body}.AAAA"


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "garbage",
        "a.b.c",
        "%%%.%%%",
        "\x00",
        forged({"k": "subscribers", "o": "newest", "t": "2026-01-01T00:00:00+00:00", "i": "x"}),
        pagination.encode(OTHER, "subscribers", CURSOR, "newest"),  # another instance's
        pagination.encode(SETTINGS, "issues", CURSOR, "newest"),  # another list's
        pagination.encode(SETTINGS, "subscribers", CURSOR, "oldest"),  # another order's
        pagination.encode(SETTINGS, "subscribers", CURSOR, "newest")[:-1],  # cut short
        ".;\u00e59~\u00ad\u00d6",  # non-ASCII: compare_digest would raise on str
        pagination.encode(SETTINGS, "subscribers", CURSOR, "newest")[:-1] + "\u00e9",
    ],
)
def test_anything_else_is_a_validation_error_naming_the_cursor(raw: str) -> None:
    with pytest.raises(ValidationError) as refused:
        pagination.decode(SETTINGS, "subscribers", raw, "newest")
    assert refused.value.field == "cursor"


def test_a_uuid_cursor_round_trips_and_refuses_the_rest() -> None:
    position = uuid.uuid4()
    raw = pagination.encode_uuid(SETTINGS, "list-members", position, "all")
    assert pagination.decode_uuid(SETTINGS, "list-members", raw, "all") == position
    for bad in (
        "x",
        ".;\u00e59",
        pagination.encode_uuid(SETTINGS, "list-members", position, "confirmed"),
        pagination.encode(SETTINGS, "list-members", CURSOR, "all"),
        pagination.encode_id(SETTINGS, "list-members", 5, "all"),
    ):
        with pytest.raises(ValidationError) as refused:
            pagination.decode_uuid(SETTINGS, "list-members", bad, "all")
        assert refused.value.field == "cursor"
