"""``herald bounces ingest``: one bounce message on standard input, for the MTA's pipe.

The MTA delivers the bounce address (``HERALD_EMAIL__SMTP__BOUNCE_ADDRESS``, with ``+``
as its recipient delimiter) to this command, e.g. Postfix's ``/etc/aliases``::

    bounces: "|/opt/herald/bin/herald bounces ingest"

or a ``pipe(8)`` transport with ``argv=… bounces ingest --recipient ${recipient}``. The
recipient is also read from ``ORIGINAL_RECIPIENT`` and ``RECIPIENT``, which Postfix's
local delivery and Exim's pipe transport set; the message's own headers come after.

Exit status, as MTAs read it (``sysexits.h``): 0 when the bounce was recorded, was a
replay, or cannot be used (not a bounce, not to a return path of Herald's, a forged
signature: logged and dropped, so the MTA does not offer it forever); 75 (EX_TEMPFAIL)
when it could not be recorded now — the database is down, the configuration is
incomplete, something unexpected failed — so the MTA keeps it and tries again.
At most :data:`MAX_BYTES` are read (the report comes before the returned message, so a
longer bounce is read cut); the rest of the input is drained.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

from herald.composition.cli.common import cli_settings
from herald.core.config import Settings
from herald.core.errors import HeraldError
from herald.core.telemetry import get_logger

if TYPE_CHECKING:
    from herald.deliverability.bounces import Ingested
    from herald.deliverability.domain import ProviderEvent

bounces_app = typer.Typer(help="Bounce messages sent back to VERP return paths.")

EX_TEMPFAIL = 75
MAX_BYTES = 10 * 1024 * 1024
_CHUNK = 1024 * 1024

log = get_logger("herald.deliverability.bounces")


@bounces_app.callback()
def _bounces() -> None:
    """Bounce messages sent back to VERP return paths (HERALD_EMAIL__SMTP__BOUNCE_ADDRESS)."""


@bounces_app.command("ingest")
def ingest(
    recipient: Annotated[
        str | None,
        typer.Option(help="The address the MTA delivered the bounce to (its VERP address)."),
    ] = None,
) -> None:
    """Record one bounce message read from standard input (the MTA's pipe)."""
    try:
        settings = cli_settings()
    except typer.Exit:
        raise typer.Exit(EX_TEMPFAIL) from None
    raw = _read_stdin()
    recipients = [
        r
        for r in (recipient, os.environ.get("ORIGINAL_RECIPIENT"), os.environ.get("RECIPIENT"))
        if r
    ]
    from herald.deliverability.bounces import BounceReader, Ingested
    from herald.email.verp import Verp

    verp = Verp.configured(settings)
    if verp is None:
        _say("HERALD_EMAIL__SMTP__BOUNCE_ADDRESS is not set: no return path can be checked")
        raise typer.Exit(EX_TEMPFAIL)
    try:
        # Read and checked before any connection: what cannot be used is dropped even
        # while the database is down.
        read = BounceReader(verp).read(raw, recipients=recipients)
        result = read if isinstance(read, Ingested) else asyncio.run(_record(settings, read))
    except HeraldError as exc:
        log.warning("bounce not recorded; the MTA will offer it again", error=exc.message)
        _say(f"not recorded now: {exc.message}")
        raise typer.Exit(EX_TEMPFAIL) from None
    except Exception as exc:  # whatever it is, the MTA keeps the bounce
        log.exception("bounce not recorded; the MTA will offer it again")
        _say(f"not recorded now: {type(exc).__name__}")
        raise typer.Exit(EX_TEMPFAIL) from None
    sys.stdout.write(_summary(result) + "\n")


async def _record(settings: Settings, event: ProviderEvent) -> Ingested:
    from herald.composition.runtime import database_urls
    from herald.composition.worker import event_recorder
    from herald.core.db import Database
    from herald.deliverability.bounces import record_bounce

    async with database_urls(settings) as urls:
        small = settings.db.model_copy(update={"pool_min_size": 1, "pool_max_size": 1})
        db = await Database.open(urls.pool, small, "herald-bounces")
        try:
            return await record_bounce(event_recorder(db, settings), event)
        finally:
            await db.close()


def _summary(result: Ingested) -> str:
    from herald.deliverability.bounces import Outcome

    if result.outcome is Outcome.IGNORED:
        log.info("bounce ignored", reason=result.reason, delivery=result.delivery_id)
        return f"bounce ignored: {result.reason}"
    kind = result.kind.value if result.kind else "?"
    if result.outcome is Outcome.REPLAY:
        return f"bounce already recorded: delivery {result.delivery_id}, {kind}"
    log.info(
        "bounce recorded", delivery=result.delivery_id, kind=kind, suppressed=result.suppressed
    )
    suppressed = " (address suppressed)" if result.suppressed else ""
    return f"bounce recorded: delivery {result.delivery_id}, {kind}{suppressed}"


def _read_stdin() -> bytes:
    """At most MAX_BYTES of standard input; the rest is read and dropped (an MTA may
    count a pipe closed early as a failed delivery)."""
    stream = sys.stdin.buffer
    raw = stream.read(MAX_BYTES)
    dropped = 0
    while chunk := stream.read(_CHUNK):
        dropped += len(chunk)
    if dropped:
        log.info("bounce longer than the limit: read cut", read=len(raw), dropped=dropped)
    return raw


def _say(message: str) -> None:
    sys.stderr.write(f"herald: {message}\n")
