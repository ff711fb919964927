"""Tracing (core/tracing.py): nothing at all without an OTLP endpoint; with one, spans,
links and log fields. Each case runs in a fresh interpreter: set-up is process-wide."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
import time

import pytest

from herald.core import tracing, tracing_sampler
from herald.core.errors import ConfigurationError
from tests.support.otlp import OtlpReceiver, ReceivedLink, silent_collector

HEAVY = ("opentelemetry.sdk", "opentelemetry.instrumentation", "opentelemetry.exporter", "wrapt")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "HERALD_"))}
    env.update(extra)
    return env


async def run_python(code: str, env: dict[str, str]) -> tuple[str, str]:
    """Run ``code`` in a fresh interpreter; its standard output and error."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        textwrap.dedent(code),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode(), err.decode()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": ""}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": " "}, False),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, True),
    ],
)
def test_tracing_is_wanted_only_with_an_otlp_endpoint(env: dict[str, str], expected: bool) -> None:
    assert tracing.wanted(env) is expected


async def test_without_an_endpoint_nothing_is_set_up_or_imported() -> None:
    code = f"""
        import sys
        from herald.composition import runtime
        from herald.core import tracing, tracing_sampler
        from herald.delivery import batch
        from herald.issues import service

        runtime.start_tracing("herald-worker")
        assert not tracing.enabled()
        with tracing.span("x", links=["00-{"1" * 32}-{"2" * 16}-01"]) as span:
            span.set("a", 1)
            span.link("garbage")
            assert tracing.current_traceparent() is None
            assert tracing.current_ids() is None
            assert not tracing.recording()
        loaded = sorted(m for m in sys.modules if m.startswith({HEAVY!r}))
        assert not loaded, loaded
        print("ok")
    """
    out, _ = await run_python(code, clean_env())
    assert out.strip() == "ok"


async def test_spans_links_and_log_fields_reach_the_collector() -> None:
    code = """
        import json, logging
        from herald.core import tracing, tracing_sampler
        from herald.core.config import Settings
        from herald.core.telemetry import configure_logging, get_logger

        configure_logging(Settings(log_format="json"))
        setup = tracing.configure("herald-worker")
        assert setup is not None and tracing.configure("again") is setup
        with tracing.span("origin") as origin:
            origin.set("herald.step", "origin")
            traceparent = tracing.current_traceparent()
            get_logger("t").info("inside")
        with tracing.span("follower", kind="consumer", links=[traceparent, None, traceparent]):
            pass
        with tracing.span("linked later") as later:
            later.link(traceparent)
            later.link("not a traceparent")
        setup.shutdown()
        assert not tracing.enabled()
        print(json.dumps({"traceparent": traceparent}))
    """
    async with OtlpReceiver() as receiver:
        env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint, OTEL_BSP_SCHEDULE_DELAY="50")
        out, err = await run_python(code, env)
        spans = {span.name: span for span in receiver.spans}
    traceparent = json.loads(out.strip().splitlines()[-1])["traceparent"]
    origin = spans["origin"]
    assert traceparent.split("-")[1:3] == [origin.trace_id, origin.span_id]
    assert origin.resource["service.name"] == "herald"
    assert origin.role == "herald-worker"
    assert origin.attributes == {"herald.step": "origin"}
    link = ReceivedLink(origin.trace_id, origin.span_id)
    assert spans["follower"].links == (link,), "duplicates and None dropped"
    assert spans["follower"].kind == "consumer"
    assert spans["follower"].trace_id != origin.trace_id, "a link, not a parent"
    assert spans["linked later"].links == (link,)
    [line] = [json.loads(x) for x in err.splitlines() if '"inside"' in x]
    assert (line["trace_id"], line["span_id"]) == (origin.trace_id, origin.span_id)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, 1.0),
        ({"OTEL_TRACES_SAMPLER": "parentbased_always_on"}, 1.0),
        ({"OTEL_TRACES_SAMPLER": "always_off"}, 0.0),
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio"}, 1.0),
        (
            {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.1"},
            0.1,
        ),
        ({"OTEL_TRACES_SAMPLER": " TraceIdRatio ", "OTEL_TRACES_SAMPLER_ARG": "0"}, 0.0),
        ({"OTEL_TRACES_SAMPLER_ARG": "0.5"}, 1.0),  # the argument alone names no sampler
    ],
)
def test_the_sample_ratio_comes_from_the_standard_variables(
    env: dict[str, str], expected: float
) -> None:
    assert tracing_sampler.sample_ratio(env) == expected


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_TRACES_SAMPLER": "traceidratoi"}, "OTEL_TRACES_SAMPLER='traceidratoi'"),
        ({"OTEL_TRACES_SAMPLER": "jaeger_remote"}, "OTEL_TRACES_SAMPLER"),
        (
            {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "10%"},
            "OTEL_TRACES_SAMPLER_ARG='10%'",
        ),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1.5"}, "from 0 to 1"),
        ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "nan"}, "from 0 to 1"),
    ],
)
def test_a_bad_sampler_is_a_configuration_error_naming_it(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigurationError) as raised:
        tracing_sampler.sample_ratio(env)
    assert named in raised.value.message


async def test_the_cli_refuses_a_bad_sampler_before_starting() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "herald",
        "config",
        env=clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
            OTEL_TRACES_SAMPLER="traceidratio",
            OTEL_TRACES_SAMPLER_ARG="half",
        ),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 2
    assert "OTEL_TRACES_SAMPLER_ARG='half' must be a number from 0 to 1" in err.decode()


async def test_a_ratio_samples_operations_and_keeps_what_links_to_a_sampled_origin() -> None:
    code = """
        import json
        from herald.core import tracing, tracing_sampler

        setup = tracing.configure("herald-worker")
        traced = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        untraced = "00-" + "3" * 32 + "-" + "4" * 16 + "-00"
        for n in range(200):
            with tracing.span(f"request {n}", kind="server"):
                with tracing.span(f"inside {n}"):
                    pass
        for n in range(20):
            with tracing.span(f"batch {n}", kind="consumer", links=[untraced, traced]):
                with tracing.span(f"send {n}", kind="client"):
                    pass
        setup.shutdown()
        print("ok")
    """
    async with OtlpReceiver() as receiver:
        env = clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="50",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0.25",
        )
        out, _ = await run_python(code, env)
        names = {span.name for span in receiver.spans}
    assert out.strip().endswith("ok")
    requests = {n for n in range(200) if f"request {n}" in names}
    assert 20 <= len(requests) <= 80, "about a quarter of the operations"
    assert {n for n in range(200) if f"inside {n}" in names} == requests, "whole traces only"
    batches = {f"batch {n}" for n in range(20)} | {f"send {n}" for n in range(20)}
    assert batches <= names, "every batch sending a traced publish's deliveries, whole"


async def test_a_hung_collector_delays_the_exit_by_the_flush_budget_only() -> None:
    code = """
        from herald.core import tracing, tracing_sampler

        tracing.configure("herald-web")
        for n in range(3000):  # six export batches: the SDK alone waits 30 s at exit
            with tracing.span(f"request {n}", kind="server"):
                pass
        print("spans made", flush=True)
    """
    async with silent_collector() as endpoint:
        env = clean_env(OTEL_EXPORTER_OTLP_ENDPOINT=endpoint, OTEL_BSP_SCHEDULE_DELAY="50")
        started = time.monotonic()
        out, err = await run_python(code, env)
        elapsed = time.monotonic() - started
    assert out.strip() == "spans made"
    assert "did not take the last spans within 5 s" in err
    assert elapsed < tracing.FLUSH_SECONDS + 10, elapsed


async def test_an_unsampled_request_skips_the_server_span_and_the_instrumentation() -> None:
    code = """
        import asyncio, json
        import httpx
        from starlette.applications import Starlette
        from starlette.responses import JSONResponse
        from starlette.routing import Route
        from herald.core import tracing

        setup = tracing.configure("herald-web")
        seen = []

        async def page(request):
            seen.append(tracing.recording())
            return JSONResponse({"traceparent": tracing.current_traceparent()})

        app = Starlette(routes=[Route("/p", page)])
        tracing.add_server_spans(app)

        async def main():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                plain = [(await client.get("/p")).json() for _ in range(50)]
                parent = "00-" + "a" * 32 + "-" + "b" * 16 + "-01"
                traced = (await client.get("/p", headers={"traceparent": parent})).json()
                unsampled = "00-" + "c" * 32 + "-" + "d" * 16 + "-00"
                declined = (await client.get("/p", headers={"traceparent": unsampled})).json()
                # Hostile: an all-zero trace id flagged sampled, garbage, a 10 KB header.
                bogus = ["00-" + "0" * 32 + "-" + "b" * 16 + "-01", "01-zz-yy-01", "x" * 10_000]
                forged = [(await client.get("/p", headers={"traceparent": v})).json()
                          for v in bogus]
            return plain, traced, declined, forged

        plain, traced, declined, forged = asyncio.run(main())
        setup.shutdown()
        print(json.dumps({"plain": plain, "traced": traced, "declined": declined,
                          "forged": forged, "seen": seen}))
    """
    async with OtlpReceiver() as receiver:
        env = clean_env(
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_BSP_SCHEDULE_DELAY="50",
            OTEL_TRACES_SAMPLER="parentbased_traceidratio",
            OTEL_TRACES_SAMPLER_ARG="0",
        )
        out, _ = await run_python(code, env)
        spans = list(receiver.spans)
    result = json.loads(out.strip().splitlines()[-1])
    assert result["plain"] == [{"traceparent": None}] * 50, "ratio 0: none sampled"
    assert result["declined"] == {"traceparent": None}
    assert result["traced"]["traceparent"].split("-")[1] == "a" * 32, "a sampled caller wins"
    assert result["forged"] == [{"traceparent": None}] * 3, "an invalid caller decides nothing"
    assert result["seen"] == [False] * 50 + [True, False] + [False] * 3, "off when unsampled"
    assert [(s.name, s.trace_id) for s in spans if s.kind == "server"] == [("GET /p", "a" * 32)]


async def test_inside_an_unsampled_operation_queries_and_calls_are_not_instrumented() -> None:
    code = """
        from opentelemetry.instrumentation.utils import is_instrumentation_enabled
        from herald.core import tracing

        setup = tracing.configure("herald-worker")
        traced = "00-" + "1" * 32 + "-" + "2" * 16 + "-01"
        with tracing.span("batch", kind="consumer"):
            unsampled = is_instrumentation_enabled(), tracing.recording()
        with tracing.span("batch", kind="consumer", links=[traced]):
            sampled = is_instrumentation_enabled(), tracing.recording()
            with tracing.span("send", kind="client"):
                inner = is_instrumentation_enabled(), tracing.recording()
            still = tracing.recording()
        after = is_instrumentation_enabled(), tracing.recording()
        setup.shutdown()
        print(*unsampled, *sampled, *inner, still, *after)
    """
    env = clean_env(
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:9",
        OTEL_TRACES_SAMPLER="parentbased_traceidratio",
        OTEL_TRACES_SAMPLER_ARG="0",
    )
    out, _ = await run_python(code, env)
    # (is_instrumentation_enabled, recording): off and not recorded inside the unsampled
    # batch; on and recorded inside the sampled one and its child; as before afterwards.
    assert out.split() == ["False", "False", *["True"] * 6, "False"]
