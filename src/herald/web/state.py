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


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.herald
    return state


State = Annotated[AppState, Depends(get_state)]
