"""What every request handler may reach: settings, the database, the draining flag."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends
from starlette.requests import Request

from herald.auth.passwords import Passwords
from herald.core.config import Settings
from herald.core.db import Database


@dataclass
class AppState:
    settings: Settings
    db: Database
    passwords: Passwords = field(default_factory=Passwords)
    draining: bool = False


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.herald
    return state


State = Annotated[AppState, Depends(get_state)]
