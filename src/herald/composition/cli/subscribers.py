"""``herald subscribers import|export``.

``import`` uploads the file into the database itself (it has the database), in chunks,
starts the import job, and runs it here too, a few seconds at a time under the job's
lease, so it finishes when no worker runs; when a worker holds the job, this command
waits and shows its progress, and takes the job over if that worker dies.
"""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from herald.composition.cli.common import cli_settings, err, out, run
from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import HeraldError
from herald.imports.domain import Mode
from herald.imports.export import ExportFormat, ExportService
from herald.imports.job import CHUNK_BYTES, ImportJob
from herald.imports.service import ImportService, ImportView
from herald.jobs.domain import JobStatus
from herald.jobs.runner import run_now

subscribers_app = typer.Typer(help="Import and export subscribers.", no_args_is_help=True)

RUN_SECONDS = 2.0  # the local runner's turn before it looks at the job again
ERRORS_SHOWN = 10


@subscribers_app.command("import")
def import_(
    file: Annotated[Path, typer.Argument(help="A CSV file with a header row.")],
    list_slug: Annotated[
        list[str], typer.Option("--list", help="The list to add them to (repeatable).")
    ],
    mode: Annotated[
        str,
        typer.Option(
            help="confirmed: you attest their consent, no email; opt-in: each new member "
            "gets a confirmation email."
        ),
    ] = "opt-in",
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Import a CSV: `email` required, `name` optional, every other column an attribute."""
    settings = cli_settings()
    try:
        parsed_mode = Mode.parse(mode)
    except HeraldError as exc:
        err.print(f"[red]herald: {exc.message}[/red]", highlight=False)
        raise typer.Exit(2) from None
    if not file.is_file():
        err.print(f"[red]herald: {file} is not a readable file[/red]", highlight=False)
        raise typer.Exit(2)
    view = run(_import(settings, file, list_slug, parsed_mode, quiet=quiet))
    if view.job.status is not JobStatus.DONE:
        err.print(f"[red]herald: the import {view.job.status.value}: {view.job.message}[/red]")
        raise typer.Exit(1)
    out.print(view.record.counts.summary(), highlight=False)


async def _import(
    settings: Settings, file: Path, slugs: list[str], mode: Mode, *, quiet: bool
) -> ImportView:
    from herald.composition.runtime import open_database

    async with open_database(settings) as db:
        service = ImportService(db, settings)
        view = await service.submit(
            file.name, _read(file), roles=None, list_slugs=slugs, mode=mode, created_by=None
        )
        view = await _follow(db, settings, service, view, quiet=quiet)
        if view.record.counts.rejected:
            await _show_errors(service, view.job.id, view.record.counts.rejected)
        return view


async def _read(file: Path) -> AsyncIterator[bytes]:
    with file.open("rb") as handle:
        while True:
            chunk = await asyncio.to_thread(handle.read, CHUNK_BYTES)
            if not chunk:
                return
            yield chunk


async def _follow(
    db: Database, settings: Settings, service: ImportService, view: ImportView, *, quiet: bool
) -> ImportView:
    """Run the job here in turns of :data:`RUN_SECONDS` (or wait for the worker that holds
    it) until it ends, with a progress bar."""
    handler = ImportJob(settings)
    lease = settings.delivery.lease_seconds
    progress = Progress(
        TextColumn("importing"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=quiet or not err.is_terminal,
        transient=True,
    )
    with progress:
        task = progress.add_task("import", total=view.job.total)
        job = view.job
        while job.status.open:
            ran = await run_now(db, job, handler, budget_seconds=RUN_SECONDS, lease_seconds=lease)
            if ran.status is JobStatus.RUNNING:
                await asyncio.sleep(1.0)  # a worker holds it: watch
            job = (await service.get(job.id)).job
            progress.update(task, completed=job.done + job.skipped, total=job.total)
    return await service.get(view.job.id)


async def _show_errors(service: ImportService, job_id: uuid.UUID, rejected: int) -> None:
    rows = await service.errors(job_id, limit=ERRORS_SHOWN)
    for row in rows:
        err.print(f"line {row.line}: {row.email or '-'}: {row.error}", highlight=False)
    if rejected > len(rows):
        err.print(f"… and {rejected - len(rows):,} more rejected rows", highlight=False)


@subscribers_app.command("export")
def export(
    list_slug: Annotated[
        str | None, typer.Option("--list", help="Only this list's members.")
    ] = None,
    format: Annotated[str, typer.Option(help="csv, or json (JSON Lines).")] = "csv",
    segment: Annotated[
        str | None, typer.Option(help="Only the subscribers this saved segment (id) selects.")
    ] = None,
) -> None:
    """Write every subscriber (or a list's members) to standard output."""
    settings = cli_settings()
    try:
        chosen = ExportFormat.parse(format)
        segment_id = uuid.UUID(segment) if segment else None
    except (HeraldError, ValueError) as exc:
        message = exc.message if isinstance(exc, HeraldError) else "--segment must be an id"
        err.print(f"[red]herald: {message}[/red]", highlight=False)
        raise typer.Exit(2) from None
    run(_export(settings, list_slug, chosen, segment_id))


async def _export(
    settings: Settings, list_slug: str | None, chosen: ExportFormat, segment: uuid.UUID | None
) -> None:
    from herald.composition.runtime import open_database

    async with open_database(settings) as db:
        export = await ExportService(db).prepare(
            list_slug=list_slug, format=chosen, segment_id=segment
        )
        stdout = sys.stdout.buffer
        async for chunk in export.chunks():
            stdout.write(chunk.encode("utf-8"))
        stdout.flush()
