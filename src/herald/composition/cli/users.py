"""``herald users …`` and ``herald apikeys …``."""

from __future__ import annotations

import asyncio
import sys
import uuid
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer

from herald.auth.domain import Role, Scope
from herald.auth.passwords import Passwords
from herald.auth.repository import ApiKeyView
from herald.auth.service import AuthService
from herald.composition.cli.common import cli_settings
from herald.core.config import Settings
from herald.core.errors import HeraldError

users_app = typer.Typer(help="Manage admin users.", no_args_is_help=True)
apikeys_app = typer.Typer(help="Manage API keys for /api/v1.", no_args_is_help=True)

T = TypeVar("T")

PasswordStdin = Annotated[
    bool, typer.Option("--password-stdin", help="Read the password from standard input.")
]


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.read()
        # Drop one trailing line ending (echo, here-strings, Windows editors), nothing else.
        for ending in ("\r\n", "\n"):
            if password.endswith(ending):
                return password[: -len(ending)]
        return password
    entered: str = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    return entered


async def _with_service(settings: Settings, action: Callable[[AuthService], Awaitable[T]]) -> T:
    from herald.composition.runtime import open_database  # uvicorn & co.: only when needed

    async with open_database(settings) as db:
        passwords = Passwords(threads=1)
        try:
            return await action(AuthService(db, settings, passwords))
        finally:
            passwords.close()


def _run(settings: Settings, action: Callable[[AuthService], Awaitable[T]]) -> T:
    try:
        return asyncio.run(_with_service(settings, action))
    except HeraldError as exc:
        typer.echo(f"herald: {exc.message}", err=True)
        raise typer.Exit(1) from None


@users_app.command("create")
def users_create(
    username: str,
    password_stdin: PasswordStdin = False,
    role: Annotated[
        Role, typer.Option(help="admin (everything) or editor (issues and subscribers only).")
    ] = Role.ADMIN,
) -> None:
    """Create a user: an admin unless --role editor."""
    settings = cli_settings()
    password = _read_password(password_stdin)

    async def create(service: AuthService) -> uuid.UUID:
        return await service.create_user(username, password, role)

    _run(settings, create)
    typer.echo(f"user {username} created ({role.value})")


@users_app.command("set-password")
def users_set_password(username: str, password_stdin: PasswordStdin = False) -> None:
    """Set a user's password (ends all of the user's sessions)."""
    settings = cli_settings()
    password = _read_password(password_stdin)

    async def reset(service: AuthService) -> None:
        await service.set_password(username, password)

    _run(settings, reset)
    typer.echo(f"password of {username} changed; their sessions have ended")


@apikeys_app.command("create")
def apikeys_create(
    name: str,
    scope: Annotated[Scope, typer.Option(help="read or write")] = Scope.READ,
    user: Annotated[str, typer.Option(help="Owner of the key.")] = "admin",
) -> None:
    """Create an API key; it is printed once."""
    settings = cli_settings()

    async def create(service: AuthService) -> tuple[uuid.UUID, str]:
        from herald.auth import repository

        async with service.db.connection() as conn:
            owner = await repository.find_user_by_username(conn, user)
        if owner is None:
            raise HeraldError(f"no user named {user!r}")
        return await service.create_api_key(owner.id, name, scope)

    key_id, key = _run(settings, create)
    typer.echo(f"API key {key_id} ({scope.value}) — shown only once:", err=True)
    typer.echo(key)


@apikeys_app.command("list")
def apikeys_list() -> None:
    """List API keys (never the keys themselves)."""
    settings = cli_settings()

    async def listing(service: AuthService) -> list[ApiKeyView]:
        return await service.list_api_keys(None)

    keys = _run(settings, listing)
    for key in keys:
        state = "revoked" if key.revoked_at else "active"
        typer.echo(
            f"{key.id}  {key.prefix}…  {key.scope.value:5}  {state:7}  {key.username}  {key.name}"
        )


@apikeys_app.command("revoke")
def apikeys_revoke(key_id: uuid.UUID) -> None:
    """Revoke an API key at once."""
    settings = cli_settings()

    async def revoke(service: AuthService) -> None:
        await service.revoke_api_key(key_id, None)

    _run(settings, revoke)
    typer.echo(f"API key {key_id} revoked")
