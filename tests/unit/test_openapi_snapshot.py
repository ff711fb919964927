"""The JSON API's OpenAPI document is the committed one: tests/unit/openapi_snapshot.json.

A change to an operation, a parameter, a model or an error response shows in review as a
change of the snapshot, and one made by accident fails here. After changing the API on
purpose, regenerate it and commit the difference:

    HERALD_UPDATE_OPENAPI_SNAPSHOT=1 .venv/bin/pytest tests/unit/test_openapi_snapshot.py

Also: every operation under /api/v1 declares its access, what it answers on success (a
schema, or 204), its errors as problem documents, and its bearer security (but the token
endpoint); every POST that changes something takes an Idempotency-Key.
"""

from __future__ import annotations

import difflib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from herald.composition.app import create_app
from herald.core.config import Settings

SNAPSHOT = Path(__file__).with_name("openapi_snapshot.json")
UPDATE_ENV = "HERALD_UPDATE_OPENAPI_SNAPSHOT"
NOT_IDEMPOTENT = {  # they answer a secret, which a stored response would keep
    ("/api/v1/auth/token", "post"),
    ("/api/v1/api-keys", "post"),
    ("/api/v1/webhooks", "post"),
    ("/api/v1/webhooks/{endpoint_id}/secret", "post"),
}


def document() -> dict[str, Any]:
    app = create_app(Settings(secret_key=SecretStr("s" * 40)), dsn="postgresql://unused/herald")
    schema = app.openapi()
    schema["info"].pop("version", None)  # the package's version: not the API's shape
    return schema


def rendered(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_the_openapi_document_matches_the_committed_snapshot() -> None:
    actual = rendered(document())
    if os.environ.get(UPDATE_ENV):
        SNAPSHOT.write_text(actual, encoding="utf-8")
        return
    expected = SNAPSHOT.read_text(encoding="utf-8") if SNAPSHOT.exists() else ""
    diff = "".join(
        difflib.unified_diff(
            expected.splitlines(keepends=True),
            actual.splitlines(keepends=True),
            "openapi_snapshot.json (committed)",
            "the app's /openapi.json",
            n=2,
        )
    )
    assert actual == expected, (
        f"the API's OpenAPI document changed. If that is meant, regenerate the snapshot:\n"
        f"    {UPDATE_ENV}=1 .venv/bin/pytest tests/unit/test_openapi_snapshot.py\n\n{diff[:20000]}"
    )


def operations() -> list[tuple[str, str, dict[str, Any]]]:
    paths = document()["paths"]
    return [
        (path, method, op)
        for path, item in sorted(paths.items())
        for method, op in sorted(item.items())
        if isinstance(op, dict) and "responses" in op
    ]


@pytest.mark.parametrize(("path", "method", "op"), operations(), ids=lambda v: str(v)[:60])
def test_every_operation_declares_access_responses_and_errors(
    path: str, method: str, op: dict[str, Any]
) -> None:
    assert path.startswith("/api/v1/")
    assert op.get("x-herald-access") in {"public", "read", "write", "admin", "admin_write"}
    responses = op["responses"]
    successes = [code for code in responses if code.startswith("2")]
    assert len(successes) == 1, responses
    (success,) = successes
    if success == "204":
        assert not responses[success].get("content")
    elif "application/json" not in responses[success]["content"]:
        # A streamed download (an export): each of its media types declared with a schema.
        assert all(c.get("schema") for c in responses[success]["content"].values()), success
    else:
        schema = responses[success]["content"]["application/json"]["schema"]
        assert schema.get("$ref") or schema.get("type") == "object", (success, schema)
        assert schema != {}, "declare a response_model"
    errors = {code: r for code, r in responses.items() if code[0] in "45"}
    assert errors, "declare the errors the operation answers"
    for code, response in errors.items():
        assert set(response["content"]) == {"application/problem+json"}, code
    if op["x-herald-access"] == "public":
        assert "security" not in op
    else:
        assert op["security"] == [{"bearer": []}]
        assert "401" in errors
    if op["x-herald-access"] != "read" and op["x-herald-access"] != "public":
        assert "403" in errors
    headers = [p["name"] for p in op.get("parameters", []) if p["in"] == "header"]
    if method == "post" and (path, method) not in NOT_IDEMPOTENT:
        assert "Idempotency-Key" in headers
        assert {"409", "422"} <= set(errors)
