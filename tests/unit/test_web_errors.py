"""The one error mapping: form errors become a flash and a 303; a refused body is a 413
whatever the route's body parser makes of it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from http.cookies import SimpleCookie
from types import SimpleNamespace

import httpx
import pytest
from fastapi import FastAPI
from pydantic import BaseModel
from starlette.requests import Request

from herald.core import errors
from herald.core.config import Settings
from herald.web import errors as web_errors
from herald.web import flash
from herald.web.cookies import FLASH_COOKIE
from herald.web.middleware import BodySizeLimitMiddleware

SETTINGS = Settings(secret_key="f" * 48)  # type: ignore[arg-type]


class Item(BaseModel):
    name: str


def build_app() -> FastAPI:
    app = FastAPI()
    app.state.herald = SimpleNamespace(settings=SETTINGS)
    web_errors.install(app)

    @app.post("/form/refused")
    async def refused() -> None:
        raise web_errors.FormError("The current password is incorrect.", redirect_to="/back")

    @app.post("/form/translated/{kind}")
    async def translated(kind: str) -> None:
        raised = {
            "conflict": errors.Conflict("this issue is sent: it cannot be published again"),
            "not_found": errors.NotFound("no such active API key"),
            "unavailable": errors.Unavailable("database unavailable"),
        }[kind]
        with web_errors.form_errors("/admin/issues/1", errors.Conflict, errors.ValidationError):
            raise raised

    @app.post("/form/renamed")
    async def renamed() -> None:
        with web_errors.form_errors("/keys", errors.NotFound, message="No such active API key."):
            raise errors.NotFound("no such active API key")

    @app.post("/model")
    async def model(item: Item) -> dict[str, str]:
        return {"name": item.name}

    app.add_middleware(BodySizeLimitMiddleware)
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as client:
        yield client


def flashes(response: httpx.Response) -> list[flash.Flash]:
    jar = SimpleCookie(response.headers["set-cookie"])
    cookie = f"{FLASH_COOKIE}={jar[FLASH_COOKIE].value}"
    request = Request({"type": "http", "headers": [(b"cookie", cookie.encode())]})
    return flash.read(request, SETTINGS)


async def test_a_form_error_is_a_303_to_its_target_with_an_error_flash(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/form/refused", headers={"Accept": "application/json"})
    assert response.status_code == 303
    assert response.headers["location"] == "/back"
    assert flashes(response) == [flash.Flash("The current password is incorrect.", "error")]


async def test_a_form_error_carries_the_same_flash_as_a_handwritten_redirect() -> None:
    request = Request({"type": "http", "headers": [], "app": build_app()})
    exc = web_errors.FormError("Authentication failed", redirect_to="/login")
    mapped = web_errors.herald_error_response(request, exc)
    by_hand = flash.redirect("/login", SETTINGS, "Authentication failed", "error")
    assert (mapped.status_code, mapped.headers["location"]) == (303, "/login")
    assert mapped.headers["set-cookie"] == by_hand.headers["set-cookie"]


async def test_listed_domain_errors_become_form_errors_with_their_message(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/form/translated/conflict")
    assert response.status_code == 303
    assert response.headers["location"] == "/admin/issues/1"
    assert flashes(response) == [
        flash.Flash("this issue is sent: it cannot be published again", "error")
    ]


async def test_a_form_error_may_say_it_in_its_own_words(client: httpx.AsyncClient) -> None:
    response = await client.post("/form/renamed")
    assert response.headers["location"] == "/keys"
    assert flashes(response) == [flash.Flash("No such active API key.", "error")]


@pytest.mark.parametrize(("kind", "status"), [("not_found", 404), ("unavailable", 503)])
async def test_errors_not_listed_keep_their_own_mapping(
    client: httpx.AsyncClient, kind: str, status: int
) -> None:
    response = await client.post(f"/form/translated/{kind}", headers={"Accept": "application/json"})
    assert response.status_code == status
    assert "set-cookie" not in response.headers


async def test_a_streamed_body_over_the_limit_is_a_413_even_where_fastapi_parses_the_body(
    client: httpx.AsyncClient,
) -> None:
    """FastAPI's body parser turns an error from ``receive`` into a 400; the limit wins."""

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(5):
            yield b"x" * (16 * 1024 + 1)

    response = await client.post(
        "/model",
        content=chunks(),
        headers={"Content-Type": "text/plain", "Accept": "application/json"},
    )
    assert response.status_code == 413
    assert response.json() == {
        "error": "payload_too_large",
        "message": "request body too large: the limit is 64 KiB",
    }
    assert response.headers["connection"] == "close"
