"""Tracing on, a request not sampled: none of OpenTelemetry's code runs for it (no server
span, no query instrumentation, no context lookups for its log lines), while a sampled
request through the same app still gets its server span and its query spans.

The set-up is process-wide, so the app runs in a fresh interpreter against this test's
database, and ``sys.setprofile`` records every Python function entered while the
unsampled requests run: counting calls, not timing them, so it cannot flake.
"""

from __future__ import annotations

import json

from tests.support.otlp import OtlpReceiver
from tests.unit.test_tracing import clean_env, run_python

CODE = """
    import asyncio, json, os, sys
    import asyncpg, httpx
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route
    from herald.core import tracing
    from herald.core.config import Settings
    from herald.core.telemetry import configure_logging, get_logger

    configure_logging(Settings(log_format="json"))
    setup = tracing.configure("herald-web")
    log = get_logger("test")

    async def main():
        conn = await asyncpg.connect(os.environ["TEST_DATABASE_URL"])

        async def page(request):
            value = await conn.fetchval("SELECT 1")
            async with conn.transaction():
                await conn.execute("SELECT 2")
                rows = [row async for row in conn.cursor("SELECT 3")]
            statement = await conn.prepare("SELECT 4")
            await statement.fetchval()
            log.info("inside", value=value, rows=len(rows))
            return JSONResponse({"traceparent": tracing.current_traceparent()})

        app = Starlette(routes=[Route("/p", page)])
        tracing.add_server_spans(app)
        entered = []

        def profile(frame, event, arg):
            name = frame.f_code.co_filename
            if event == "call" and ("/opentelemetry/" in name or "/wrapt/" in name):
                entered.append(f"{name.rsplit('site-packages/', 1)[-1]}:{frame.f_code.co_name}")

        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            await client.get("/p")  # the first: lazy imports, statement caches
            sys.setprofile(profile)
            try:
                plain = [(await client.get("/p")).json() for _ in range(20)]
            finally:
                sys.setprofile(None)
            parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
            traced = (await client.get("/p", headers={"traceparent": parent})).json()
        await conn.close()
        return plain, traced, entered

    plain, traced, entered = asyncio.run(main())
    setup.shutdown()
    print(json.dumps({"plain": plain, "traced": traced, "entered": entered}))
"""


async def test_an_unsampled_request_runs_no_opentelemetry_code(database_url: str) -> None:
    async with OtlpReceiver() as receiver:
        env = clean_env(
            TEST_DATABASE_URL=database_url,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="50",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0",
        )
        out, err = await run_python(CODE, env)
        spans = list(receiver.spans)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["plain"] == [{"traceparent": None}] * 20
    assert result["entered"] == [], sorted(set(result["entered"]))[:20]

    # The sampled request, through the same wrappers: its server span, and each query
    # (fetchval, the transaction's BEGIN/COMMIT, execute, the cursor, the prepared
    # statement) a client span of the asyncpg instrumentation under it.
    assert result["traced"]["traceparent"].split("-")[1] == "a" * 32
    [server] = [s for s in spans if s.kind == "server"]
    assert (server.name, server.trace_id) == ("GET /p", "a" * 32)
    queries = [s for s in spans if s.kind == "client" and "asyncpg" in s.scope]
    assert {s.trace_id for s in queries} == {"a" * 32}, "no query of an unsampled request"
    assert {"SELECT", "BEGIN;", "COMMIT;"} <= {s.name.split()[0] for s in queries}, queries
    assert len(queries) >= 6, [s.name for s in queries]

    lines = [json.loads(x) for x in err.splitlines() if '"inside"' in x]
    assert len(lines) == 22
    assert [line.get("trace_id") for line in lines] == [None] * 21 + ["a" * 32]
