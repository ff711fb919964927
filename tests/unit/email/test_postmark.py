"""PostmarkProvider against the in-process Postmark sink: wire format and classification."""

from __future__ import annotations

import socket
import time
from collections.abc import AsyncIterator, Callable
from email.utils import formatdate

import pytest
from aiohttp import web
from pydantic import SecretStr

from herald.core.config import EmailSettings, PostmarkSettings
from herald.email.message import Accepted, EmailMessage, PermanentFailure, TransientFailure
from herald.email.postmark import PostmarkProvider
from tests.support.postmark_sink import TOKEN_HEADER, PostmarkSink

TOKEN = "server-token-123"

ProviderFactory = Callable[..., PostmarkProvider]


def message(n: int = 0, *, headers: tuple[tuple[str, str], ...] = ()) -> EmailMessage:
    return EmailMessage(
        sender="Herald <news@herald.test>",
        recipient=f"reader{n}@example.test",
        subject=f"Issue {n} — ünïcode",
        html_body=f"<p>Hello {n}</p>",
        text_body=f"Hello {n}",
        headers=headers,
    )


def settings(base_url: str, *, token: str | None = TOKEN, timeout: float = 5.0) -> EmailSettings:
    return EmailSettings(
        provider="postmark",
        timeout_seconds=timeout,
        postmark=PostmarkSettings(
            base_url=base_url, server_token=SecretStr(token) if token is not None else None
        ),
    )


@pytest.fixture
async def sink() -> AsyncIterator[PostmarkSink]:
    async with PostmarkSink(token=TOKEN) as running:
        yield running


@pytest.fixture
async def make_provider() -> AsyncIterator[ProviderFactory]:
    made: list[PostmarkProvider] = []

    def make(base_url: str, **kwargs: object) -> PostmarkProvider:
        provider = PostmarkProvider(settings(base_url, **kwargs))  # type: ignore[arg-type]
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


@pytest.fixture
def provider(sink: PostmarkSink, make_provider: ProviderFactory) -> PostmarkProvider:
    return make_provider(sink.base_url + "/")  # a trailing slash must not double up


async def test_single_message_maps_fields_and_headers(
    sink: PostmarkSink, provider: PostmarkProvider
) -> None:
    msg = message(7, headers=(("List-Unsubscribe", "<https://h.test/u?t=1>"), ("X-Tag", "a")))

    [result] = await provider.send_batch([msg])

    assert isinstance(result, Accepted)
    assert sink.requests == {"/email": 1}
    assert sink.messages == [
        {
            "From": "Herald <news@herald.test>",
            "To": "reader7@example.test",
            "Subject": "Issue 7 — ünïcode",
            "HtmlBody": "<p>Hello 7</p>",
            "TextBody": "Hello 7",
            "Headers": [
                {"Name": "List-Unsubscribe", "Value": "<https://h.test/u?t=1>"},
                {"Name": "X-Tag", "Value": "a"},
            ],
        }
    ]
    assert sink.message_ids[result.message_id or ""] == "reader7@example.test"
    assert sink.last_headers["X-Postmark-Server-Token"] == TOKEN
    assert sink.last_headers["Accept"] == "application/json"
    assert sink.last_headers["Content-Type"] == "application/json"


async def test_no_headers_key_without_extra_headers(
    sink: PostmarkSink, provider: PostmarkProvider
) -> None:
    await provider.send_batch([message(1), message(2)])

    assert sink.requests == {"/email/batch": 1}
    assert [m["To"] for m in sink.messages] == ["reader1@example.test", "reader2@example.test"]
    assert all("Headers" not in m for m in sink.messages)


async def test_batch_maps_headers_per_message(
    sink: PostmarkSink, provider: PostmarkProvider
) -> None:
    results = await provider.send_batch([message(1, headers=(("X-A", "1"),)), message(2)])

    assert all(isinstance(r, Accepted) for r in results)
    assert sink.messages[0]["Headers"] == [{"Name": "X-A", "Value": "1"}]
    assert "Headers" not in sink.messages[1]


async def test_no_token_configured_sends_no_token_header(make_provider: ProviderFactory) -> None:
    async with PostmarkSink() as open_sink:
        provider = make_provider(open_sink.base_url, token=None)
        [result] = await provider.send_batch([message()])

    assert isinstance(result, Accepted)
    assert "X-Postmark-Server-Token" not in open_sink.last_headers


async def test_wrong_token_is_permanent(sink: PostmarkSink, make_provider: ProviderFactory) -> None:
    provider = make_provider(sink.base_url, token="wrong")

    results = await provider.send_batch([message(1), message(2)])
    [single] = await provider.send_batch([message(3)])

    assert all(isinstance(r, PermanentFailure) for r in results)
    assert isinstance(single, PermanentFailure)
    assert "401" in single.error
    assert "ErrorCode 10" in single.error
    assert sink.messages == []


async def test_batch_error_code_fails_only_that_message(
    sink: PostmarkSink, provider: PostmarkProvider
) -> None:
    sink.reject_recipients({"reader1@example.test"}, error_code=406, message="Inactive recipient")

    results = await provider.send_batch([message(0), message(1), message(2)])

    assert isinstance(results[0], Accepted)
    assert isinstance(results[2], Accepted)
    assert isinstance(results[1], PermanentFailure)
    assert "406" in results[1].error
    assert "Inactive recipient" in results[1].error
    assert [m["To"] for m in sink.messages] == ["reader0@example.test", "reader2@example.test"]


async def test_single_rejected_recipient_is_permanent_with_postmark_error(
    sink: PostmarkSink, provider: PostmarkProvider
) -> None:
    sink.reject_recipients({"reader0@example.test"})

    [result] = await provider.send_batch([message(0)])

    assert isinstance(result, PermanentFailure)
    assert "422" in result.error
    assert "ErrorCode 406" in result.error


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_errors_are_transient(
    sink: PostmarkSink, provider: PostmarkProvider, status: int
) -> None:
    sink.fail_next(2, status=status)

    [single] = await provider.send_batch([message(0)])
    batch = await provider.send_batch([message(1), message(2)])

    assert isinstance(single, TransientFailure)
    assert str(status) in single.error
    assert single.retry_after is None
    assert len(batch) == 2
    assert all(isinstance(r, TransientFailure) for r in batch)
    assert sink.messages == []


async def test_429_is_transient_and_honours_retry_after(
    sink: PostmarkSink, provider: PostmarkProvider
) -> None:
    sink.rate_limit_next(retry_after=7)
    sink.rate_limit_next(retry_after=2)

    [single] = await provider.send_batch([message(0)])
    batch = await provider.send_batch([message(1), message(2)])

    assert isinstance(single, TransientFailure)
    assert single.retry_after == 7.0
    assert "429" in single.error
    assert [r.retry_after for r in batch if isinstance(r, TransientFailure)] == [2.0, 2.0]


async def test_503_retry_after_is_honoured(sink: PostmarkSink, provider: PostmarkProvider) -> None:
    sink.respond_next(503, {"Message": "maintenance"}, headers={"Retry-After": "30"})

    [result] = await provider.send_batch([message()])

    assert isinstance(result, TransientFailure)
    assert result.retry_after == 30.0


@pytest.mark.parametrize(
    ("header", "bounds"),
    [("soon", None), ("nan", None), ("-5", (0.0, 0.0)), ("http-date", (50.0, 61.0))],
)
async def test_retry_after_forms(
    sink: PostmarkSink,
    provider: PostmarkProvider,
    header: str,
    bounds: tuple[float, float] | None,
) -> None:
    if header == "http-date":
        header = formatdate(time.time() + 60, usegmt=True)
    sink.rate_limit_next(retry_after=header)

    [result] = await provider.send_batch([message()])

    assert isinstance(result, TransientFailure)
    if bounds is None:
        assert result.retry_after is None
    else:
        assert result.retry_after is not None
        assert bounds[0] <= result.retry_after <= bounds[1]


@pytest.mark.parametrize(
    ("status", "code"), [(422, 300), (400, 402), (401, 10), (404, None), (413, None)]
)
async def test_other_4xx_are_permanent_and_carry_postmark_error(
    sink: PostmarkSink, provider: PostmarkProvider, status: int, code: int | None
) -> None:
    body = {"ErrorCode": code, "Message": "nope"} if code is not None else b"plain text"
    sink.respond_next(status, body, times=2)

    [single] = await provider.send_batch([message(0)])
    batch = await provider.send_batch([message(1), message(2)])

    assert isinstance(single, PermanentFailure)
    assert f"HTTP {status}" in single.error
    if code is not None:
        assert f"ErrorCode {code}: nope" in single.error
    else:
        assert "plain text" in single.error
    assert all(isinstance(r, PermanentFailure) for r in batch)


async def test_timeout_is_transient(sink: PostmarkSink, make_provider: ProviderFactory) -> None:
    provider = make_provider(sink.base_url, timeout=0.2)
    sink.hanging = True

    [single] = await provider.send_batch([message(0)])
    batch = await provider.send_batch([message(1), message(2)])

    assert isinstance(single, TransientFailure)
    assert "0.2s" in single.error
    assert all(isinstance(r, TransientFailure) for r in batch)
    sink.hanging = False
    [after] = await provider.send_batch([message(3)])
    assert isinstance(after, Accepted)


async def test_connection_refused_is_transient(make_provider: ProviderFactory) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    provider = make_provider(f"http://127.0.0.1:{port}")

    [single] = await provider.send_batch([message(0)])
    batch = await provider.send_batch([message(1), message(2)])

    assert isinstance(single, TransientFailure)
    assert "failed" in single.error
    assert len(batch) == 2
    assert all(isinstance(r, TransientFailure) for r in batch)


@pytest.mark.parametrize(
    "body",
    [{"not": "a list"}, [{"ErrorCode": 0, "MessageID": "x"}], b"<html>oops</html>"],
    ids=["object", "wrong-length", "not-json"],
)
async def test_malformed_batch_response_is_transient_for_all(
    sink: PostmarkSink, provider: PostmarkProvider, body: object
) -> None:
    sink.respond_next(200, body)

    results = await provider.send_batch([message(0), message(1), message(2)])

    assert len(results) == 3
    assert all(isinstance(r, TransientFailure) for r in results)
    assert all("malformed batch response" in r.error for r in results)  # type: ignore[union-attr]


async def test_batch_item_without_error_code_is_transient_alone(
    sink: PostmarkSink, provider: PostmarkProvider
) -> None:
    sink.respond_next(200, [{"ErrorCode": 0, "MessageID": "m-1"}, {"Message": "?"}])

    results = await provider.send_batch([message(0), message(1)])

    assert results[0] == Accepted("m-1")
    assert isinstance(results[1], TransientFailure)


async def test_single_accepted_without_json_has_no_message_id(
    sink: PostmarkSink, provider: PostmarkProvider
) -> None:
    sink.respond_next(200, b"")

    assert await provider.send_batch([message()]) == [Accepted(None)]


async def test_more_than_500_is_chunked_and_order_kept(
    sink: PostmarkSink, provider: PostmarkProvider
) -> None:
    messages = [message(n) for n in range(1001)]
    rejected = {m.recipient for m in messages[::97]}
    sink.reject_recipients(rejected)

    results = await provider.send_batch(messages)

    # 500 + 500 as batches, the single leftover through /email.
    assert sink.requests == {"/email/batch": 2, "/email": 1}
    assert len(results) == len(messages)
    for sent, result in zip(messages, results, strict=True):
        if sent.recipient in rejected:
            assert isinstance(result, PermanentFailure), sent.recipient
        else:
            assert isinstance(result, Accepted), sent.recipient
            assert sink.message_ids[result.message_id or ""] == sent.recipient


async def test_empty_batch_makes_no_request(sink: PostmarkSink, provider: PostmarkProvider) -> None:
    assert await provider.send_batch([]) == []
    assert sink.requests == {}


async def test_session_is_reused_and_recreated_after_aclose(
    sink: PostmarkSink, provider: PostmarkProvider
) -> None:
    await provider.send_batch([message(0)])
    first = provider._session
    await provider.send_batch([message(1)])
    assert provider._session is first

    await provider.aclose()
    assert first is not None
    assert first.closed
    [result] = await provider.send_batch([message(2)])
    assert isinstance(result, Accepted)


class RecordingServer:
    """Any method, any path: records who came and whether they brought the token; 200 {}."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, str | None]] = []
        self._runner: web.AppRunner | None = None
        self.base_url = ""

    async def _handle(self, request: web.Request) -> web.Response:
        await request.read()
        self.seen.append((request.method, request.path, request.headers.get(TOKEN_HEADER)))
        return web.json_response([{"ErrorCode": 0, "MessageID": "elsewhere"}] * 2)

    async def __aenter__(self) -> RecordingServer:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.base_url = f"http://127.0.0.1:{site.port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.mark.parametrize("status", [301, 302, 307, 308])
async def test_a_redirect_is_never_followed_and_fails_permanently_naming_the_target(
    sink: PostmarkSink, provider: PostmarkProvider, status: int
) -> None:
    """Following one would replay the token elsewhere, and a 301/302 turns the POST into
    a GET whose 200 looks like acceptance."""
    async with RecordingServer() as elsewhere:
        for path in ("/email", "/email/batch"):
            sink.respond_next(status, b"", headers={"Location": elsewhere.base_url + path})

        [single] = await provider.send_batch([message(0)])
        batch = await provider.send_batch([message(1), message(2)])

        assert elsewhere.seen == [], "the redirect was followed"
    for result in (single, *batch):
        assert isinstance(result, PermanentFailure)
        assert f"HTTP {status}" in result.error
        assert elsewhere.base_url in result.error
        assert "HERALD_EMAIL__POSTMARK__BASE_URL" in result.error
