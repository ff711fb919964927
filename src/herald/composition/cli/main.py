"""The ``herald`` typer app: process commands, outbox, config; registers ``users`` and
``apikeys`` from :mod:`.users`."""

from __future__ import annotations

import json
import os
import sys
from typing import Annotated, Any

import typer

from herald.composition.cli.bounces import bounces_app
from herald.composition.cli.common import HostOption, PortOption, cli_settings, err, fail, out, run
from herald.composition.cli.subscribers import subscribers_app
from herald.composition.cli.users import apikeys_app, users_app
from herald.core.config import redacted
from herald.core.db import Database
from herald.core.errors import HeraldError

app = typer.Typer(
    name="herald",
    help="Herald: a self-hosted email newsletter service.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.command()
def up(host: HostOption = None, port: PortOption = None) -> None:
    """Development all-in-one: embedded Postgres, migrations, web + worker in one process."""
    settings = cli_settings(host=host, port=port)
    from herald.composition import runtime

    first_admin: list[str] = []

    async def create_first_admin(db: Database) -> None:
        from herald.auth.passwords import Passwords
        from herald.auth.service import AuthService

        passwords = Passwords(threads=1)
        try:
            password = await AuthService(db, settings, passwords).ensure_first_admin()
        finally:
            passwords.close()
        if password is not None:
            first_admin.append(password)

    def ready(url: str) -> None:
        out.print(f"\n[bold green]Herald is running at {url}[/bold green]", highlight=False)
        if first_admin:
            out.print(
                f"Admin login: admin / {first_admin[0]} at {url}/login"
                " (shown only this once; change it at /admin/password)",
                highlight=False,
            )
        else:
            out.print(f"Admin login at {url}/login", highlight=False)
        if not settings.is_production:
            out.print(
                f"Development outbox (emails Herald sends): {url}/dev/outbox", highlight=False
            )
        out.print("Stop with Ctrl+C.\n")

    run(
        runtime.run(settings, web=True, worker=True, on_ready=ready, on_database=create_first_admin)
    )


@app.command()
def serve(
    host: HostOption = None,
    port: PortOption = None,
    workers: Annotated[int, typer.Option(help="Web processes.", min=1, max=64)] = 1,
) -> None:
    """Web only (no delivery worker)."""
    settings = cli_settings(host=host, port=port)
    from herald.composition import runtime

    if workers == 1:
        run(runtime.run(settings, web=True, worker=False), fast_loop=True)
        return
    from herald.composition import multiprocess

    try:
        multiprocess.serve(settings, workers)
    except HeraldError as exc:
        raise fail(exc) from None


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Concurrent claim loops in this process.", min=1, max=64)
    ] = None,
) -> None:
    """Delivery worker only; run as many as you like, on as many machines."""
    settings = cli_settings()
    if settings.delivery.nice:
        os.nice(settings.delivery.nice)  # yield the CPU to web processes on shared cores
    from herald.composition import runtime

    run(runtime.run(settings, web=False, worker=True, concurrency=concurrency))


@app.command()
def migrate() -> None:
    """Apply all migrations and exit (idempotent; safe to run concurrently)."""
    settings = cli_settings()
    from herald.composition.runtime import database_urls
    from herald.core import migrate as migrations

    async def apply() -> tuple[bool, set[str]]:
        async with database_urls(settings) as urls:  # never through a pooler
            ran = await migrations.upgrade_async(urls.direct)
            return ran, await migrations.database_revisions(urls.direct)

    ran, revisions = run(apply())
    state = "migrated to" if ran else "already at"
    out.print(f"database {state} revision {', '.join(sorted(revisions))}")


@app.command()
def outbox(
    to: Annotated[str | None, typer.Option(help="Only messages to this address.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many messages.", min=1)] = 10_000,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print the messages held by the outbox provider, oldest first."""
    settings = cli_settings()
    from herald.composition.runtime import database_urls
    from herald.core.db import connect
    from herald.email.outbox import StoredMessage, list_messages

    async def fetch() -> list[StoredMessage]:
        async with database_urls(settings) as urls:
            conn = await connect(urls.direct, settings.db, "herald-cli")
            try:
                return await list_messages(conn, recipient=to, limit=limit)
            finally:
                await conn.close()

    messages = run(fetch())
    for message in messages:
        if as_json:
            record = {
                "id": message.id,
                "created_at": message.created_at.isoformat(),
                "from": message.sender,
                "to": message.recipient,
                "subject": message.subject,
                "text": message.text_body,
                "html": message.html_body,
                "headers": message.headers,
            }
            sys.stdout.write(json.dumps(record) + "\n")
            continue
        sys.stdout.write(
            f"=== message {message.id} · {message.created_at:%Y-%m-%d %H:%M:%S} UTC\n"
            f"From: {message.sender}\nTo: {message.recipient}\nSubject: {message.subject}\n"
            + "".join(f"{name}: {value}\n" for name, value in message.headers)
            + f"\n{message.text_body.rstrip()}\n\n"
        )
    if not messages and not as_json:
        err.print("the outbox is empty")


@app.command("config")
def show_config(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Print the effective configuration, secrets redacted."""
    data = redacted(cli_settings())
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
        return
    for key, value in _flatten(data):
        sys.stdout.write(f"{key}={'' if value is None else value}\n")


def _flatten(data: dict[str, Any], prefix: str = "HERALD_") -> list[tuple[str, Any]]:
    lines: list[tuple[str, Any]] = []
    for key, value in data.items():
        name = f"{prefix}{key.upper()}"
        if isinstance(value, dict):
            lines.extend(_flatten(value, name + "__"))
        elif isinstance(value, list | tuple):  # as the variable takes it: comma-separated
            lines.append((name, ",".join(str(item) for item in value)))
        else:
            lines.append((name, value))
    return lines


app.add_typer(users_app, name="users")
app.add_typer(apikeys_app, name="apikeys")
app.add_typer(subscribers_app, name="subscribers")
app.add_typer(bounces_app, name="bounces")


def main() -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    app()
