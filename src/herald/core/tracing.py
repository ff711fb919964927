"""Traces (OpenTelemetry), exported over OTLP/HTTP when ``OTEL_EXPORTER_OTLP_ENDPOINT``
(or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is set, and nothing at all when it is not.

Off (the default), :func:`configure` sets up nothing and imports nothing of the SDK or
the instrumentations: every function here is a no-op behind one ``None`` check
(:func:`span` yields an inert handle, :func:`current_traceparent` is None), so tracing
costs nothing.

On, each process (``herald-web``, ``herald-worker``, ``herald-web+worker``) gets a
tracer provider of its own (service ``herald``, the role in ``herald.process.role``),
a batch exporter reading the standard ``OTEL_EXPORTER_OTLP_*``/``OTEL_BSP_*``
variables, and the maintained instrumentations: ASGI server spans (the app adds
:func:`add_server_spans` outermost), asyncpg and aiohttp client spans. Herald's own
spans (fan-out, batch, provider call) come from :func:`span`.

Database queries and HTTP calls made outside any traced operation (the worker's and
scheduler's polls, heartbeats, housekeeping) would each be a trace of one span every
few seconds; the sampler drops such *root client* spans. Operations (requests,
fan-outs, batches) are kept in the share ``OTEL_TRACES_SAMPLER_ARG`` names
(``OTEL_TRACES_SAMPLER=parentbased_traceidratio``; all of them by default), and a batch
that sends a sampled publish's deliveries is always kept (:func:`sample_ratio`).

Work that is not kept costs next to nothing: :func:`recording` (one ContextVar read,
``tracing_sampler.RECORDING``) is True only inside a sampled request or operation, and
the query instrumentation, the log lines' ids, the span naming and the stored
``traceparent`` check it before anything else; an unsampled request does not even enter
the ASGI middleware (``SampledServerSpans``).

A collector that does not answer never holds a process up: the spans still queued are
flushed for at most :data:`FLUSH_SECONDS` when a web app stops (its lifespan's end; a
``serve --workers N`` child never reaches exit hooks) and at exit, then dropped.

The W3C ``traceparent`` of the request that published an issue (or enqueued a
confirmation email) is stored with it; the worker's fan-out, batch and provider-call
spans carry a *link* to it, so one trace leads from the publish to every send.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol
from urllib.parse import urlsplit

from herald.core.tracing_sampler import (
    RECORDING,
    SampledServerSpans,
    asyncpg_instrumentor,
    root_sampler,
    sample_ratio,
)

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, SpanContext, Tracer

ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
SERVICE_NAME = "herald"
ROLE_ATTRIBUTE = "herald.process.role"
MAX_LINKS = 32  # a batch of many origins (confirmations) links to the first 32
# How long a process waits for its last spans to reach the collector (the SDK's exit
# hook waits 30 s for a hung one: past the drain budget of deploy/, 40 s in all).
FLUSH_SECONDS = 5.0

AttributeValue = str | bool | int | float
Kind = Literal["internal", "server", "client", "producer", "consumer"]


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the environment asks for traces (an OTLP endpoint is set)."""
    env = os.environ if environ is None else environ
    return any(env.get(name, "").strip() for name in ENDPOINT_VARIABLES)


class SpanHandle(Protocol):
    """What Herald's code does with a span: annotate it, link it to an origin."""

    def set(self, key: str, value: AttributeValue) -> None: ...

    def link(self, traceparent: str | None) -> None: ...


class _Off:
    """The handle, and its context manager, while tracing is off: one shared object."""

    __slots__ = ()

    def set(self, key: str, value: AttributeValue) -> None:
        pass

    def link(self, traceparent: str | None) -> None:
        pass

    def __enter__(self) -> SpanHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None


OFF = _Off()


@dataclass
class Tracing:
    """The process's tracing set-up; :meth:`shutdown` flushes and undoes it."""

    role: str
    provider: TracerProvider
    tracer: Tracer
    instrumentors: list[Any] = field(default_factory=list)
    ratio: float = 1.0  # the share of operations traced (tracing_sampler)

    def span_context(self, traceparent: str | None) -> SpanContext | None:
        """The (remote) span context a stored ``traceparent`` names; None if not valid."""
        if not traceparent:
            return None
        from opentelemetry import trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        context = TraceContextTextMapPropagator().extract({"traceparent": traceparent})
        span_context = trace.get_current_span(context).get_span_context()
        return span_context if span_context.is_valid else None

    stuck: bool = False  # an export outlived a flush: the collector does not answer

    def flush(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Export the spans ended so far, waiting at most ``timeout`` seconds."""
        return self._bounded(self.provider.force_flush, timeout)

    def shutdown(self, timeout: float = FLUSH_SECONDS) -> bool:
        """Stop tracing; flush the spans still queued for at most ``timeout`` seconds."""
        if _active.tracing is self:
            _active.tracing = None
        for instrumentor in self.instrumentors:
            instrumentor.uninstrument()
        self.instrumentors.clear()
        return self._bounded(self.provider.shutdown, timeout)

    def _bounded(self, call: Callable[[], object], timeout: float) -> bool:
        """Run ``call`` in a daemon thread for at most ``timeout`` seconds. False (and a
        warning, once) when it did not finish: the spans it held are dropped, and the
        process goes on, or exits, on time. Once stuck, later calls do not wait again."""
        if self.stuck:
            return False
        thread = threading.Thread(target=call, name="herald-trace-flush", daemon=True)
        thread.start()
        thread.join(timeout)
        if not thread.is_alive():
            return True
        self.stuck = True
        logging.getLogger(__name__).warning(
            "tracing: the OTLP collector did not take the last spans within %.0f s; "
            "they are dropped",
            timeout,
        )
        return False


class _Active:
    """The process's set-up; None: tracing is off."""

    tracing: Tracing | None = None


_active = _Active()


def enabled() -> bool:
    return _active.tracing is not None


# Whether the current work is traced (its span sampled): False while tracing is off, in
# unsampled requests and operations, and outside any. One ContextVar read.
recording = RECORDING.get


def flush(timeout: float = FLUSH_SECONDS) -> None:
    """Export what this process has traced so far (bounded); nothing when off."""
    if _active.tracing is not None:
        _active.tracing.flush(timeout)


def configure(role: str) -> Tracing | None:
    """Set up tracing for this process when :func:`wanted`; None (and nothing done) if not.

    Idempotent: a second call returns the set-up of the first."""
    if _active.tracing is not None:
        return _active.tracing
    if not wanted():
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.aiohttp_client import AioHttpClientInstrumentor
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor
    from opentelemetry.sdk.trace.sampling import ParentBased

    attributes: dict[str, AttributeValue] = {ROLE_ATTRIBUTE: role}
    if not os.environ.get("OTEL_SERVICE_NAME"):
        attributes["service.name"] = SERVICE_NAME
    ratio = sample_ratio()
    sampler = ParentBased(root=root_sampler(ratio))
    provider = TracerProvider(
        resource=_resource(attributes), sampler=sampler, shutdown_on_exit=False
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    instrumentors: list[Any] = [asyncpg_instrumentor(), AioHttpClientInstrumentor()]
    for instrumentor in instrumentors:
        instrumentor.instrument(tracer_provider=provider)
    setup = Tracing(role, provider, provider.get_tracer("herald"), instrumentors, ratio)
    _active.tracing = setup
    atexit.register(setup.shutdown)  # bounded, unlike the SDK's own exit hook
    return setup


def _resource(attributes: Mapping[str, AttributeValue]) -> Any:
    """The process's resource (the SDK's defaults and detectors, then ``attributes``),
    hashed once: the OTLP exporter groups every span it exports by resource, and the
    SDK's ``Resource.__hash__`` JSON-dumps all its attributes each time (~40,000
    instructions a span, 3 % of a traced subscribe request: BENCHMARKS.md)."""
    from opentelemetry.sdk.resources import Resource

    class HashedOnce(Resource):
        def __init__(self, resource: Resource) -> None:
            super().__init__(resource.attributes, resource.schema_url)
            self._hash = super().__hash__()  # immutable: its attributes cannot change

        def __hash__(self) -> int:
            return self._hash

    return HashedOnce(Resource.create(dict(attributes)))


class _On:
    __slots__ = ("_span", "_tracing")

    def __init__(self, span: Span, tracing: Tracing) -> None:
        self._span = span
        self._tracing = tracing

    def set(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def link(self, traceparent: str | None) -> None:
        context = self._tracing.span_context(traceparent)
        if context is not None:
            self._span.add_link(context)


def span(
    name: str,
    *,
    kind: Kind = "internal",
    start_ns: int | None = None,
    links: Iterable[str | None] = (),
    attributes: Mapping[str, AttributeValue] | None = None,
) -> AbstractContextManager[SpanHandle]:
    """A span around the block, current inside it, linked to the ``traceparent`` of
    each origin in ``links`` (duplicates and Nones skipped, at most :data:`MAX_LINKS`).
    ``start_ns`` (``time.time_ns()``) backdates it: an operation that is known to be
    worth a span only after its first query starts it then, and still covers that query.
    Off: the one inert handle, nothing else (``links`` is not even iterated)."""
    tracing = _active.tracing
    if tracing is None:
        return OFF
    return _span(tracing, name, kind, start_ns, links, attributes)


@contextmanager
def _span(
    tracing: Tracing,
    name: str,
    kind: Kind,
    start_ns: int | None,
    links: Iterable[str | None],
    attributes: Mapping[str, AttributeValue] | None,
) -> Iterator[SpanHandle]:
    from opentelemetry.trace import Link, SpanKind

    contexts = []
    for traceparent in dict.fromkeys(links):
        context = tracing.span_context(traceparent)
        if context is not None:
            contexts.append(Link(context))
            if len(contexts) == MAX_LINKS:
                break
    with tracing.tracer.start_as_current_span(
        name,
        kind=SpanKind[kind.upper()],
        links=contexts,
        attributes=dict(attributes or {}),
        start_time=start_ns,
    ) as current:
        if current.is_recording():
            token = RECORDING.set(True)
            try:
                yield _On(current, tracing)
            finally:
                RECORDING.reset(token)
            return
        # Not sampled: the queries inside skip their instrumentation (RECORDING), and the
        # HTTP calls too (suppressed: a non-recording span each would cost their hooks'
        # work; once per operation, not per query).
        from opentelemetry.instrumentation.utils import suppress_instrumentation

        token = RECORDING.set(False)
        try:
            with suppress_instrumentation():
                yield _On(current, tracing)
        finally:
            RECORDING.reset(token)


def current_traceparent() -> str | None:
    """The W3C ``traceparent`` of the current span, to store with what it causes; None
    when tracing is off or the current span is not sampled."""
    if not RECORDING.get():
        return None
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    if not trace.get_current_span().get_span_context().trace_flags.sampled:
        return None
    carrier: dict[str, str] = {}
    TraceContextTextMapPropagator().inject(carrier)
    return carrier.get("traceparent")


def current_ids() -> tuple[str, str] | None:
    """``(trace_id, span_id)`` in hex of the current sampled span, for log lines: None
    at the cost of one ContextVar read (every log line asks) unless the work is traced."""
    if not RECORDING.get():
        return None
    from opentelemetry import trace

    context = trace.get_current_span().get_span_context()
    if not (context.is_valid and context.trace_flags.sampled):
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")


def add_server_spans(app: Any) -> None:
    """Add the ASGI server-span middleware to a Starlette app (call it last: outermost)."""
    tracing = _active.tracing
    if tracing is None:
        return
    from opentelemetry.util.http import get_excluded_urls

    app.add_middleware(
        SampledServerSpans,
        ratio=tracing.ratio,
        tracer_provider=tracing.provider,
        excluded_urls=get_excluded_urls("ASGI"),  # OTEL_PYTHON_ASGI_EXCLUDED_URLS
        exclude_spans=["receive", "send"],
    )


def name_server_span(method: str, route: str) -> None:
    """Name the request's server span by its route template (``GET /v/{token}``) and put
    the template in place of the path and query, which carry capability tokens (web
    copies, unsubscribe and confirmation links) a trace backend must not keep. Call it
    when the response starts: the span ends with the response's last byte."""
    if not RECORDING.get():
        return
    from opentelemetry import trace

    current = trace.get_current_span()
    if current.is_recording():
        current.update_name(f"{method} {route}")
        current.set_attribute("http.route", route)
        kept = getattr(current, "attributes", None) or {}
        for key in ("http.target", "url.path"):
            current.set_attribute(key, route)
        if "url.query" in kept:
            current.set_attribute("url.query", "")
        if "http.url" in kept:
            parts = urlsplit(str(kept["http.url"]))
            current.set_attribute("http.url", f"{parts.scheme}://{parts.netloc}{route}")
