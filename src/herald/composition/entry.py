"""The console script's first code: exit 0 on SIGTERM/SIGINT even while still starting.

Importing the CLI (typer, rich, pydantic, asyncpg, ...) takes most of a second. A process
manager that stops a worker it has just started would otherwise find it killed by the
signal (exit -15) instead of the contract's exit 0. Nothing is claimed or served before
``runtime.run`` installs the real handlers (which replace these), so stopping here loses
nothing.
"""

from __future__ import annotations

import os
import signal
import sys
from types import FrameType


def _stop_while_starting(signum: int, frame: FrameType | None) -> None:  # noqa: ARG001
    # os._exit, not sys.exit: a SystemExit raised inside a half-built event loop can leave
    # asyncio's shutdown waiting on tasks or executor threads (seen once in CI as a hang).
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _stop_while_starting)
    from herald.composition.cli.main import main as cli_main

    cli_main()
