"""Tracing (core/tracing.py): nothing at all without an OTLP endpoint; with one, spans,
links and log fields. Each case runs in a fresh interpreter: set-up is process-wide."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap

import pytest

from herald.core import tracing
from tests.support.otlp import OtlpReceiver, ReceivedLink

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
        from herald.core import tracing
        from herald.delivery import batch
        from herald.issues import service

        runtime.start_tracing("herald-worker")
        assert not tracing.enabled()
        with tracing.span("x", links=["00-{"1" * 32}-{"2" * 16}-01"]) as span:
            span.set("a", 1)
            span.link("garbage")
            assert tracing.current_traceparent() is None
            assert tracing.current_ids() is None
        loaded = sorted(m for m in sys.modules if m.startswith({HEAVY!r}))
        assert not loaded, loaded
        print("ok")
    """
    out, _ = await run_python(code, clean_env())
    assert out.strip() == "ok"


async def test_spans_links_and_log_fields_reach_the_collector() -> None:
    code = """
        import json, logging
        from herald.core import tracing
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
