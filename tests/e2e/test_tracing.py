"""Traces: a publish through the contract form is one linked trace, from the request to
the provider calls, as an OTLP collector receives it from real processes.

``herald serve --workers 2`` and ``herald worker`` export to an OTLP/HTTP receiver in
the test (``tests/support/otlp.py``, decoding with ``opentelemetry-proto``). The
publish request's server span has its asyncpg children; its ``traceparent`` is stored
with the issue; the worker's fan-out, batch and provider-call spans link to it; the
provider call has its aiohttp client span. A subscription's confirmation email is
linked to its request the same way (``deliveries.traceparent``). Log lines written
inside traced work carry ``trace_id``/``span_id``.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import httpx

from herald.core import tracing
from herald.core.config import Settings
from herald.core.db import Database
from tests.e2e.test_newcomer import wait_ready
from tests.support.database import free_port
from tests.support.newsletters import add_subscribers, create_admin, log_in, newsletter_form
from tests.support.otlp import OtlpReceiver, ReceivedLink, ReceivedSpan, silent_collector
from tests.support.postmark_sink import PostmarkSink
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.queue import wait_until

READERS = 3
SECRET = "SeCrEtToKeN0123456789abcdef"


def log_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def linked_to(spans: list[ReceivedSpan], origin: ReceivedSpan) -> list[ReceivedSpan]:
    link = ReceivedLink(origin.trace_id, origin.span_id)
    return [span for span in spans if link in span.links]


def is_query(span: ReceivedSpan) -> bool:
    return span.kind == "client" and "asyncpg" in span.scope


async def test_a_publish_is_traced_from_the_request_to_the_provider_calls(
    database_url: str, db: Database, settings: Settings, tmp_path: Path
) -> None:
    await add_subscribers(db, READERS)
    await create_admin(db, settings)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    async with OtlpReceiver() as receiver, PostmarkSink(token="t") as sink:
        env = herald_env(
            HERALD_DATABASE_URL=database_url,
            HERALD_DATA_DIR=str(tmp_path / "data"),
            HERALD_SECRET_KEY="s" * 48,
            HERALD_PORT=str(port),
            HERALD_EMAIL__PROVIDER="postmark",
            HERALD_EMAIL__POSTMARK__BASE_URL=sink.base_url,
            HERALD_EMAIL__POSTMARK__SERVER_TOKEN="t",
            HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.2",
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="100",
        )
        async with (
            herald_process(
                "serve", "--workers", "2", env=env, log_path=tmp_path / "serve.log"
            ) as serve,
            herald_process("worker", env=env, log_path=tmp_path / "worker.log") as worker,
        ):
            await wait_ready(base_url)
            async with httpx.AsyncClient(base_url=base_url, timeout=30) as client:
                await log_in(client)
                form = await newsletter_form(client)
                published = await client.post(
                    "/admin/newsletters",
                    data={
                        "title": "Traced",
                        "text_content": "Hello {{ subscriber.name }}",
                        "html_content": "<p>Hello {{ subscriber.name }}</p>",
                        **form,
                    },
                )
                assert published.status_code == 303, published.text
                subscribed = await client.post(
                    "/subscriptions", data={"name": "New", "email": "new@example.com"}
                )
                assert subscribed.status_code == 200, subscribed.text
                # Capability tokens in paths and queries never reach the trace backend.
                for path in (f"/unsubscribe/one-click?token={SECRET}.x", f"/v/{SECRET}"):
                    assert (await client.get(path)).status_code in {400, 404}
            await wait_until(lambda: len(sink.messages) == READERS + 1, timeout=60)
            serve.send_signal(signal.SIGTERM)
            worker.send_signal(signal.SIGTERM)
            assert await wait_exit(serve, 30) == 0, (tmp_path / "serve.log").read_text()
            assert await wait_exit(worker, 30) == 0, (tmp_path / "worker.log").read_text()
        # The processes flush their spans before they exit.
        spans = list(receiver.spans)

    # The publish request: an ASGI server span named by its route, with its queries.
    [publish] = [s for s in spans if s.name == "POST /admin/newsletters"]
    assert publish.kind == "server"
    assert publish.resource["service.name"] == "herald"
    assert publish.role == "herald-web"
    assert publish.attributes["http.route"] == "/admin/newsletters"
    queries = [s for s in spans if s.trace_id == publish.trace_id and is_query(s)]
    assert queries, "asyncpg spans of the publish request"
    async with db.connection() as conn:
        stored = await conn.fetchval("SELECT traceparent FROM newsletter_issues")
    version, trace_id, span_id, flags = stored.split("-")
    assert (version, trace_id, span_id) == ("00", publish.trace_id, publish.span_id)
    assert int(flags, 16) & 1, "sampled"

    # The worker: fan-out, batches and provider calls, each linked to the publish.
    worker_spans = [s for s in spans if s.role == "herald-worker"]
    [fan_out] = [s for s in linked_to(worker_spans, publish) if s.name == "herald.issues.fan_out"]
    assert fan_out.attributes["herald.queued"] == READERS
    assert [s for s in spans if s.parent_span_id == fan_out.span_id and is_query(s)]
    batches = [s for s in linked_to(worker_spans, publish) if s.name == "herald.delivery.batch"]
    assert batches
    assert all(b.kind == "consumer" for b in batches)
    assert [s for s in spans if s.parent_span_id in {b.span_id for b in batches} and is_query(s)]
    sends = [s for s in linked_to(worker_spans, publish) if s.name == "herald.email.send"]
    # The subscription's confirmation may share a batch (and a provider call) with the
    # issue's deliveries: that send links to both requests and carries its one message too.
    [subscribe] = [s for s in spans if s.name == "POST /subscriptions"]
    shared = [s for s in sends if ReceivedLink(subscribe.trace_id, subscribe.span_id) in s.links]
    assert sum(s.attributes["herald.email.messages"] for s in sends) == READERS + len(shared)
    assert {s.attributes["herald.email.provider"] for s in sends} == {"postmark"}
    assert {s.attributes["herald.email.outcome"] for s in sends} == {"accepted"}
    assert {s.parent_span_id for s in sends} <= {b.span_id for b in batches}
    calls = [s for s in spans if s.parent_span_id in {s.span_id for s in sends}]
    assert calls
    assert all(c.kind == "client" and "aiohttp" in c.scope for c in calls)

    # A subscription: its confirmation email's send links to the request.
    [confirmation] = [
        s for s in linked_to(worker_spans, subscribe) if s.name == "herald.email.send"
    ]
    if shared:  # sent with the deliveries in one provider call
        assert shared == [confirmation]
    else:
        assert confirmation.attributes["herald.email.messages"] == 1

    # The token-bearing requests were traced, by route template, without their tokens.
    names = {s.name for s in spans}
    assert {"GET /unsubscribe/one-click", "GET /v/{token}"} <= names, names
    leaked = [
        (s.name, key) for s in spans for key, value in s.attributes.items() if SECRET in str(value)
    ]
    assert not leaked, leaked

    # Polls outside any operation (claims, heartbeats, housekeeping) make no traces.
    roots = {s.name for s in spans if not s.parent_span_id}
    assert not [s for s in spans if not s.parent_span_id and s.kind == "client"], roots

    # Log lines of traced work carry its ids.
    access = [
        line
        for line in log_lines(tmp_path / "serve.log")
        if line.get("event") == "request" and line.get("route") == "/admin/newsletters"
    ]
    assert {(line.get("trace_id"), line.get("span_id")) for line in access} >= {
        (publish.trace_id, publish.span_id)
    }
    sent = [
        line for line in log_lines(tmp_path / "worker.log") if line.get("event") == "issue sent"
    ]
    assert sent
    assert sent[0]["trace_id"] in {b.trace_id for b in batches}


async def test_a_hung_collector_does_not_hold_up_shutdown(
    database_url: str, tmp_path: Path
) -> None:
    """Each web process has spans queued for a collector that never answers; SIGTERM
    still ends it within the flush budget (``tracing.FLUSH_SECONDS``), well inside the
    drain budget, and it says what it dropped."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    async with silent_collector() as endpoint:
        env = herald_env(
            HERALD_DATABASE_URL=database_url,
            HERALD_DATA_DIR=str(tmp_path / "data"),
            HERALD_SECRET_KEY="s" * 48,
            HERALD_PORT=str(port),
            OTEL_EXPORTER_OTLP_ENDPOINT=endpoint,
            OTEL_BSP_SCHEDULE_DELAY="50",
            # The first export hangs until the end: nothing is dropped before SIGTERM.
            OTEL_EXPORTER_OTLP_TIMEOUT="300",
        )
        log_path = tmp_path / "serve.log"
        async with herald_process("serve", "--workers", "2", env=env, log_path=log_path) as serve:
            await wait_ready(base_url)
            limits = httpx.Limits(max_keepalive_connections=0)  # new connections: both processes
            async with httpx.AsyncClient(base_url=base_url, timeout=30, limits=limits) as client:
                for _ in range(5):
                    pages = await asyncio.gather(*(client.get("/login") for _ in range(10)))
                    assert {page.status_code for page in pages} == {200}
            serve.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            code = await wait_exit(serve, 30)
            elapsed = time.monotonic() - signalled
    log = log_path.read_text(encoding="utf-8")
    assert code == 0, log
    dropped = [
        line for line in log_lines(log_path) if "did not take the last spans" in line["event"]
    ]
    assert dropped, log
    assert elapsed < tracing.FLUSH_SECONDS + 15, elapsed
