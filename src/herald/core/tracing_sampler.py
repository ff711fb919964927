"""The root sampler of Herald's traces (``core/tracing.py``), kept apart: which
operations are traced, from the standard ``OTEL_TRACES_SAMPLER`` variables."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping
from typing import Any

from herald.core.errors import ConfigurationError

SAMPLER_VARIABLE = "OTEL_TRACES_SAMPLER"
RATIO_VARIABLE = "OTEL_TRACES_SAMPLER_ARG"
_FIXED_RATIOS = {
    "always_on": 1.0,
    "parentbased_always_on": 1.0,
    "always_off": 0.0,
    "parentbased_always_off": 0.0,
}
_RATIO_SAMPLERS = ("traceidratio", "parentbased_traceidratio")


def sample_ratio(environ: Mapping[str, str] | None = None) -> float:
    """The share of operations traced, from ``OTEL_TRACES_SAMPLER`` (``*always_on``, 1;
    ``*always_off``, 0; ``*traceidratio``: ``OTEL_TRACES_SAMPLER_ARG``, default 1).
    Anything else is a :class:`ConfigurationError`: a typo must not trace all or none."""
    env = os.environ if environ is None else environ
    name = env.get(SAMPLER_VARIABLE, "").strip().lower()
    if not name:
        return 1.0
    if name in _FIXED_RATIOS:
        return _FIXED_RATIOS[name]
    if name not in _RATIO_SAMPLERS:
        known = ", ".join([*_FIXED_RATIOS, *_RATIO_SAMPLERS])
        raise ConfigurationError(f"{SAMPLER_VARIABLE}={name!r} is not one of: {known}")
    raw = env.get(RATIO_VARIABLE, "").strip()
    if not raw:
        return 1.0
    try:
        ratio = float(raw)
    except ValueError:
        ratio = -1.0
    if not 0.0 <= ratio <= 1.0:
        raise ConfigurationError(f"{RATIO_VARIABLE}={raw!r} must be a number from 0 to 1")
    return ratio


def root_sampler(ratio: float) -> Any:
    """For a span with no parent here: a client span (a query or call outside any
    operation: polls, heartbeats) is dropped; an operation linked to a sampled origin (a
    batch sending a traced publish) is kept; any other is kept with probability
    ``ratio``. Spans with a parent follow it (``ParentBased``): whole traces or none."""
    from opentelemetry.sdk.trace.sampling import (
        Decision,
        Sampler,
        SamplingResult,
        TraceIdRatioBased,
    )
    from opentelemetry.trace import SpanKind

    by_ratio = TraceIdRatioBased(ratio)

    class KeepOperations(Sampler):
        def should_sample(
            self,
            parent_context: Any,
            trace_id: int,
            name: str,
            kind: SpanKind | None = None,
            attributes: Any = None,
            links: Any = None,
            trace_state: Any = None,
        ) -> SamplingResult:
            if kind is SpanKind.CLIENT:
                return SamplingResult(Decision.DROP)
            if links and any(link.context.trace_flags.sampled for link in links):
                return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)
            return by_ratio.should_sample(
                parent_context, trace_id, name, kind, attributes, links, trace_state
            )

        def get_description(self) -> str:
            return f"KeepOperations{{drop root client spans, linked to sampled, {ratio}}}"

    return KeepOperations()


class SampledServerSpans:
    """The ASGI server-span middleware, for the requests the sampler keeps only.

    OpenTelemetry's middleware and the asyncpg/aiohttp instrumentations do most of their
    work whether a request is sampled or not (attributes, context, a non-recording span
    per query). Below a ratio of 1 this decides first — an incoming ``traceparent``'s
    sampled flag, else a draw at ``ratio`` — and runs an unsampled request without the
    middleware and with instrumentation suppressed, so it costs almost nothing."""

    def __init__(self, app: Any, *, ratio: float, **middleware_options: Any) -> None:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        self.app = app
        self.ratio = ratio
        self.traced = OpenTelemetryMiddleware(app, **middleware_options)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self.ratio >= 1.0 or scope["type"] not in ("http", "websocket") or self._keep(scope):
            await self.traced(scope, receive, send)
            return
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        with suppress_instrumentation():
            await self.app(scope, receive, send)

    def _keep(self, scope: Any) -> bool:
        for name, value in scope.get("headers", ()):
            if name == b"traceparent":  # the caller decided: the W3C propagator reads it
                from opentelemetry import trace
                from opentelemetry.trace.propagation.tracecontext import (
                    TraceContextTextMapPropagator,
                )

                carrier = {"traceparent": value.decode("latin-1")}
                context = TraceContextTextMapPropagator().extract(carrier)
                parent = trace.get_current_span(context).get_span_context()
                if parent.is_valid:
                    return bool(parent.trace_flags.sampled)
                break
        return random.random() < self.ratio  # noqa: S311 - sampling, not secrecy
