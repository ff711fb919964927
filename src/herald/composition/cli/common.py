"""What every ``herald`` subcommand shares: settings, output, running a coroutine.

Subcommand modules import this, never ``cli.main`` (which imports them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from herald.core import tracing, tracing_sampler
from herald.core.config import Settings, load_settings
from herald.core.errors import ConfigurationError, HeraldError

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)
T = TypeVar("T")

HostOption = Annotated[str | None, typer.Option(help="Interface to listen on.")]
PortOption = Annotated[int | None, typer.Option(help="Port to listen on.", min=0, max=65535)]


def cli_settings(**overrides: Any) -> Settings:
    """Load and validate settings (exit 2 with a message if invalid); configure logging."""
    try:
        settings = load_settings()
        if tracing.wanted():
            tracing_sampler.sample_ratio()  # a bad OTEL_TRACES_SAMPLER fails here, with the rest
    except ConfigurationError as exc:
        err.print(f"[red]herald: {exc.message}[/red]", highlight=False)
        raise typer.Exit(2) from None
    changes = {k: v for k, v in overrides.items() if v is not None}
    if changes:
        settings = settings.with_overrides(**changes)
    from herald.core.telemetry import configure_logging

    configure_logging(settings)
    return settings


def fail(exc: HeraldError) -> typer.Exit:
    """Print a Herald error the way every subcommand does; raise the returned exit."""
    err.print(f"[red]herald: {exc.message}[/red]", highlight=False)
    return typer.Exit(1)


def run(coro: Coroutine[Any, Any, T], *, fast_loop: bool = False) -> T:
    """Run ``coro``; ``fast_loop``: on uvloop when installed, as uvicorn's own worker
    processes do (``herald serve --workers N``), so one web process is not slower than N."""
    try:
        with asyncio.Runner(loop_factory=_uvloop_factory() if fast_loop else None) as runner:
            return runner.run(coro)
    except HeraldError as exc:
        raise fail(exc) from None


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvicorn[standard] installs it
        return None
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory
