"""Request ids, body limits, error mapping and the access log, on a tiny app (no database)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import structlog
from fastapi import FastAPI, Request
from structlog.testing import capture_logs

from herald.core import errors
from herald.web import errors as web_errors
from herald.web.middleware import (
    MAX_BODY_BYTES,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    RouteBodyLimit,
)

SECRET_DETAIL = "connection to db-password-s3cr3t refused"
BIG_LIMIT = 2 * 1024 * 1024


def build_app() -> FastAPI:
    app = FastAPI()
    web_errors.install(app)

    @app.get("/items/{item_id}")
    async def item(item_id: int, request: Request) -> dict[str, object]:
        return {"item": item_id, "request_id": request.scope["state"]["request_id"]}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.post("/big/{name}")
    async def big(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError(SECRET_DETAIL)

    raised: dict[str, errors.HeraldError] = {
        "validation": errors.ValidationError("name must not be empty", field="name"),
        "unauthorized": errors.Unauthorized("unknown or expired token"),
        "not_found": errors.NotFound("no such subscriber"),
        "conflict": errors.Conflict("idempotency key reused"),
        "unavailable": errors.Unavailable("database unavailable", retry_after=7),
        "rate_limited": errors.RateLimited("too many attempts", retry_after=30),
        "media": errors.UnsupportedMediaType("send a form or JSON"),
        "markup": errors.ValidationError("<script>alert('x')</script> & more"),
    }

    @app.get("/fail/{kind}")
    async def fail(kind: str) -> None:
        raise raised[kind]

    # The same order as herald.composition.app.create_app: added last = outermost.
    app.add_middleware(
        BodySizeLimitMiddleware, routes=[RouteBodyLimit("POST", "/big/{name}", BIG_LIMIT)]
    )
    app.add_middleware(RequestContextMiddleware)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        yield client


# -- request ids -------------------------------------------------------------


async def test_a_request_id_is_generated_when_absent(client: httpx.AsyncClient) -> None:
    first = await client.get("/items/1")
    second = await client.get("/items/1")
    request_id = first.headers["x-request-id"]
    assert len(request_id) >= 16
    assert first.json()["request_id"] == request_id
    assert second.headers["x-request-id"] != request_id


async def test_a_sane_client_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/items/1", headers={"X-Request-ID": "lb-7f3a:42.1_x"})
    assert response.headers["x-request-id"] == "lb-7f3a:42.1_x"
    assert response.json()["request_id"] == "lb-7f3a:42.1_x"


@pytest.mark.parametrize("insane", ["has spaces", "a" * 500, "semi;colon", "<script>"])
async def test_an_insane_client_request_id_is_replaced(
    client: httpx.AsyncClient, insane: str
) -> None:
    response = await client.get("/items/1", headers={"X-Request-ID": insane})
    assert response.status_code == 200
    assert response.headers["x-request-id"] != insane
    assert response.headers["x-request-id"].isalnum()


# -- body size limit ---------------------------------------------------------


async def test_a_body_at_the_limit_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", content=b"x" * MAX_BODY_BYTES)
    assert MAX_BODY_BYTES == 64 * 1024
    assert response.status_code == 200
    assert response.json() == {"received": MAX_BODY_BYTES}


async def test_a_body_declared_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    response = await client.post("/echo", content=b"x" * (MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    assert "64 KiB" in response.text
    assert response.headers["x-request-id"]


async def test_a_streamed_body_over_the_limit_is_refused(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * (16 * 1024 + 1)

    response = await client.post("/echo", content=chunks())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413
    assert "64 KiB" in response.text


async def test_a_declared_413_answers_in_the_format_the_client_asked_for(
    client: httpx.AsyncClient,
) -> None:
    body = b"x" * (MAX_BODY_BYTES + 1)
    as_json = await client.post("/echo", content=body, headers={"Accept": "application/json"})
    assert as_json.status_code == 413
    assert as_json.json() == {
        "error": "payload_too_large",
        "message": "request body too large: the limit is 64 KiB",
    }
    as_html = await client.post("/echo", content=body, headers={"Accept": "text/html"})
    assert as_html.status_code == 413
    assert as_html.headers["content-type"].startswith("text/html")
    assert "<h1>Request too large</h1>" in as_html.text


async def test_a_route_with_its_own_limit_accepts_up_to_it(client: httpx.AsyncClient) -> None:
    at_limit = await client.post("/big/x", content=b"x" * BIG_LIMIT)
    assert at_limit.json() == {"received": BIG_LIMIT}
    over = await client.post("/big/x", content=b"x" * (BIG_LIMIT + 1))
    assert over.status_code == 413
    assert "2 MiB" in over.text

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(33):
            yield b"x" * (64 * 1024)

    streamed = await client.post("/big/x", content=chunks())
    assert streamed.status_code == 413
    assert "2 MiB" in streamed.text


async def test_a_route_limit_applies_to_its_method_and_path_only(
    client: httpx.AsyncClient,
) -> None:
    body = b"x" * (MAX_BODY_BYTES + 1)
    assert (await client.post("/big/x/more", content=body)).status_code == 413
    assert (await client.post("/big/", content=body)).status_code == 413
    assert (await client.post("/echo", content=body)).status_code == 413
    assert (await client.put("/big/x", content=body)).status_code == 413


async def test_a_small_streamed_body_is_accepted(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(4):
            yield b"x" * (16 * 1024)

    response = await client.post("/echo", content=chunks())
    assert response.json() == {"received": 64 * 1024}


# -- errors ------------------------------------------------------------------


async def test_an_unhandled_error_is_a_500_naming_the_request_id_and_nothing_else(
    client: httpx.AsyncClient,
) -> None:
    with capture_logs() as logs:
        response = await client.get("/boom", headers={"X-Request-ID": "req-boom-1"})
    assert response.status_code == 500
    assert "req-boom-1" in response.text
    assert "s3cr3t" not in response.text
    assert "RuntimeError" not in response.text
    assert response.headers["x-request-id"] == "req-boom-1"
    [error] = [entry for entry in logs if entry["event"] == "unhandled error"]
    assert isinstance(error["exc_info"], RuntimeError)


@pytest.mark.parametrize(
    ("kind", "status", "code", "retry_after"),
    [
        ("validation", 400, "invalid_request", None),
        ("unauthorized", 401, "unauthorized", None),
        ("not_found", 404, "not_found", None),
        ("conflict", 409, "conflict", None),
        ("media", 415, "unsupported_media_type", None),
        ("rate_limited", 429, "rate_limited", "30"),
        ("unavailable", 503, "unavailable", "7"),
    ],
)
async def test_herald_errors_map_to_their_status(
    client: httpx.AsyncClient, kind: str, status: int, code: str, retry_after: str | None
) -> None:
    response = await client.get(f"/fail/{kind}", headers={"Accept": "application/json"})
    assert response.status_code == status
    assert response.json()["error"] == code
    assert response.headers.get("retry-after") == retry_after


async def test_a_validation_error_names_the_problem_and_the_field(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/fail/validation", headers={"Accept": "application/json"})
    assert response.json() == {
        "error": "invalid_request",
        "message": "name must not be empty",
        "field": "name",
    }


async def test_json_is_returned_when_asked_for(client: httpx.AsyncClient) -> None:
    response = await client.get("/fail/unauthorized", headers={"Accept": "application/json"})
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"error": "unauthorized", "message": "unknown or expired token"}


async def test_browsers_get_an_html_page_with_the_message_escaped(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get(
        "/fail/markup", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    )
    assert response.status_code == 400
    assert response.headers["content-type"].startswith("text/html")
    assert "&lt;script&gt;alert(" in response.text
    assert "&amp; more" in response.text
    assert "<script>" not in response.text


@pytest.mark.parametrize("accept", [None, "*/*", "text/plain"])
async def test_other_clients_get_plain_text(client: httpx.AsyncClient, accept: str | None) -> None:
    headers = {"Accept": accept} if accept else {}
    if accept is None:
        client.headers.pop("accept", None)
    response = await client.get("/fail/unauthorized", headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "unknown or expired token\n"


# -- access log --------------------------------------------------------------


async def test_each_request_is_logged_with_its_route_template(
    client: httpx.AsyncClient,
) -> None:
    with capture_logs(processors=[structlog.contextvars.merge_contextvars]) as logs:
        response = await client.get("/items/42", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200
    [line] = [entry for entry in logs if entry["event"] == "request"]
    assert line["method"] == "GET"
    assert line["route"] == "/items/{item_id}"
    assert line["status"] == 200
    assert line["request_id"] == "req-42"
    assert line["log_level"] == "info"
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0


@pytest.mark.parametrize(
    ("method", "path", "status", "route"),
    [
        ("GET", "/nowhere", 404, "<unmatched>"),
        ("GET", "/fail/rate_limited", 429, "/fail/{kind}"),
        ("GET", "/boom", 500, "/boom"),
    ],
)
async def test_failures_are_logged_with_their_status(
    client: httpx.AsyncClient, method: str, path: str, status: int, route: str
) -> None:
    with capture_logs() as logs:
        response = await client.request(method, path)
    assert response.status_code == status
    [line] = [entry for entry in logs if entry["event"] == "request"]
    assert (line["status"], line["route"]) == (status, route)


def test_a_connection_dying_mid_transaction_counts_as_the_database_being_unavailable() -> None:
    # bench R2: Postgres shutting down under load made a rollback fail with this client
    # error; it must become a 503 (Unavailable), never a 500.
    import asyncpg

    from herald.core.db import is_unavailable_error

    error = asyncpg.InternalClientError("cannot switch to state 15; another operation (2)")
    assert is_unavailable_error(error)
    assert not is_unavailable_error(ValueError("a bug"))


def quiet_app() -> FastAPI:
    app = FastAPI()
    web_errors.install(app)

    @app.post("/webhooks/{provider}")
    async def webhook(provider: str) -> dict[str, str]:
        if provider == "refused":
            raise errors.Unauthorized("wrong or missing webhook credentials")
        return {"provider": provider}

    @app.post("/hooks")
    async def not_quiet() -> dict[str, str]:
        return {}

    app.add_middleware(RequestContextMiddleware, quiet_prefixes=("/webhooks/",))
    return app


async def test_quiet_routes_log_their_successes_at_debug_level() -> None:
    transport = httpx.ASGITransport(app=quiet_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        with capture_logs() as logs:
            assert (await client.post("/webhooks/postmark")).status_code == 200
            assert (await client.post("/webhooks/refused")).status_code == 401
            assert (await client.post("/hooks")).status_code == 200
    lines = [(e["route"], e["status"], e["log_level"]) for e in logs if e["event"] == "request"]
    assert lines == [
        ("/webhooks/{provider}", 200, "debug"),
        ("/webhooks/{provider}", 401, "info"),  # a refusal stays visible
        ("/hooks", 200, "info"),
    ]
