"""What every request handler may reach: settings, the database, the draining flag,
and the process's live-progress hub."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from herald.auth.passwords import Passwords
from herald.core.config import Settings
from herald.core.db import Database
from herald.issues.progress import ProgressHub


@dataclass
class AppState:
    settings: Settings
    db: Database
    passwords: Passwords = field(default_factory=Passwords)
    draining: bool = False
    progress: ProgressHub | None = None


async def get_state(request: Request) -> AppState:
    # async: FastAPI runs a plain-function dependency in a worker thread (a thread hop on
    # every request; 7 % of a subscribe in the P3 profile).
    state: AppState = request.app.state.herald
    return state


State = Annotated[AppState, Depends(get_state)]
