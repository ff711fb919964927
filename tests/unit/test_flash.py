"""Flash messages: written before a redirect, read once, unforgeable."""

from __future__ import annotations

from http.cookies import SimpleCookie

from starlette.requests import Request
from starlette.responses import Response

from herald.core.config import Settings
from herald.web import flash
from herald.web.cookies import FLASH_COOKIE

SETTINGS = Settings(secret_key="f" * 48)  # type: ignore[arg-type]


def request_with(cookie: str | None) -> Request:
    headers = [(b"cookie", f"{FLASH_COOKIE}={cookie}".encode())] if cookie else []
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


def cookie_value(response: Response) -> str:
    jar = SimpleCookie(response.headers["set-cookie"])
    return jar[FLASH_COOKIE].value


def test_a_redirect_carries_its_message_to_the_next_request() -> None:
    response = flash.redirect("/login", SETTINGS, "Authentication failed", "error")
    assert response.status_code == 303
    assert response.headers["location"] == "/login"
    assert "HttpOnly" in response.headers["set-cookie"]
    messages = flash.read(request_with(cookie_value(response)), SETTINGS)
    assert messages == [flash.Flash("Authentication failed", "error")]


def test_no_message_no_cookie() -> None:
    assert "set-cookie" not in flash.redirect("/x", SETTINGS).headers


def test_clearing_expires_the_cookie() -> None:
    response = Response()
    flash.clear(response, SETTINGS)
    assert 'herald_flash=""' in response.headers["set-cookie"]
    assert "Max-Age=0" in response.headers["set-cookie"]


def test_tampered_or_foreign_cookies_are_ignored() -> None:
    good = cookie_value(flash.redirect("/", SETTINGS, "hello"))
    payload, _, mac = good.partition(".")
    assert flash.read(request_with(payload + "." + mac[::-1]), SETTINGS) == []
    other = Settings(secret_key="g" * 48)  # type: ignore[arg-type]
    assert flash.read(request_with(good), other) == []
    assert flash.read(request_with("garbage"), SETTINGS) == []
    assert flash.read(request_with(None), SETTINGS) == []
