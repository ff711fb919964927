"""The root sampler of Herald's traces (``core/tracing.py``), kept apart: which
operations are traced, from the standard ``OTEL_TRACES_SAMPLER`` variables; and what
lets unsampled work skip OpenTelemetry altogether (:data:`RECORDING`)."""

from __future__ import annotations

import os
import random
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from typing import Any

from herald.core.errors import ConfigurationError

# True inside work whose span is sampled: a request the server middleware keeps (set
# inside its span), a Herald span that records (``tracing.span``). Everything else —
# unsampled requests and operations, polls outside any operation, and every process
# with tracing off — reads False, with one ContextVar read: the query instrumentation,
# the log lines' trace ids, the span naming and the stored traceparent skip all their
# OpenTelemetry work on it (a lookup of the current span costs ~10 Python calls).
RECORDING: ContextVar[bool] = ContextVar("herald_trace_recording", default=False)

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

    OpenTelemetry's middleware does most of its work whether a request is sampled or not
    (attributes, context, a non-recording span). Below a ratio of 1 this decides first —
    an incoming ``traceparent``'s sampled flag, else a draw at ``ratio`` — and runs an
    unsampled request without it: no OpenTelemetry code runs for that request beyond
    :data:`RECORDING` reads (False), which the query instrumentation checks first
    (:func:`asyncpg_instrumentor`). A kept request runs the middleware, and inside its
    span :data:`RECORDING` says whether that span records."""

    def __init__(self, app: Any, *, ratio: float, **middleware_options: Any) -> None:
        from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

        self.app = app
        self.ratio = ratio
        self.traced = OpenTelemetryMiddleware(_MarkRecording(app), **middleware_options)

    def __call__(self, scope: Any, receive: Any, send: Any) -> Awaitable[None]:
        # A plain function handing back the chosen app's coroutine: no frame of its own
        # stays in the request's call chain, to be passed through at every await.
        if self.ratio >= 1.0 or scope["type"] not in ("http", "websocket") or self._keep(scope):
            return self.traced(scope, receive, send)
        return self.app(scope, receive, send)  # type: ignore[no-any-return]

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


class _MarkRecording:
    """Inside the server span: :data:`RECORDING` is whether that span records (a caller's
    unsampled ``traceparent`` at ratio 1 makes a span that does not)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        from opentelemetry import trace

        token = RECORDING.set(trace.get_current_span().is_recording())
        try:
            await self.app(scope, receive, send)
        finally:
            RECORDING.reset(token)


def asyncpg_instrumentor() -> Any:
    """OpenTelemetry's asyncpg instrumentation, gated on :data:`RECORDING`."""
    return _GatedAsyncPG()


class _GatedAsyncPG:
    """OpenTelemetry's asyncpg instrumentation behind a gate: a query of unsampled work (or
    of no operation at all) goes straight to asyncpg, a query of sampled work through the
    instrumentation (its client span, as before).

    The instrumentation wraps asyncpg's query methods with wrapt, whose wrapper costs
    every call ~7,000 instructions before it can even decide to do nothing (a bound
    wrapper object per attribute access, argument parsing, a coroutine): most of what an
    unsampled request paid for tracing. The gate is a plain function put in its place on
    the class, which calls the original method unless the work records."""

    def __init__(self) -> None:
        from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor

        self.instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
        self.gated: list[tuple[type, str, Any]] = []  # (class, name, the wrapt wrapper)

    def instrument(self, **options: Any) -> None:
        import asyncpg.connection
        import asyncpg.cursor
        import asyncpg.prepared_stmt

        classes = (
            asyncpg.connection.Connection,
            asyncpg.cursor.Cursor,
            asyncpg.cursor.CursorIterator,
            asyncpg.prepared_stmt.PreparedStatement,
        )
        before = {cls: dict(vars(cls)) for cls in classes}
        self.instrumentor.instrument(**options)
        for cls in classes:  # what the instrumentation replaced: its wrappers
            for name, attribute in list(vars(cls).items()):
                original = before[cls].get(name)
                if attribute is not original and callable(original):
                    setattr(cls, name, _gate(cls, attribute, original))
                    self.gated.append((cls, name, attribute))

    def uninstrument(self) -> None:
        for cls, name, wrapper in self.gated:
            setattr(cls, name, wrapper)
        self.gated.clear()
        self.instrumentor.uninstrument()


def _gate(cls: type, wrapper: Any, original: Callable[..., Any]) -> Callable[..., Any]:
    def gate(self: Any, *args: Any, **kwargs: Any) -> Any:
        if RECORDING.get():
            return wrapper.__get__(self, cls)(*args, **kwargs)
        return original(self, *args, **kwargs)

    gate.__name__, gate.__qualname__ = original.__name__, original.__qualname__
    gate.__doc__, gate.__module__ = original.__doc__, original.__module__
    return gate
