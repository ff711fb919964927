"""``POST /admin/profile``: profile this web process for a few seconds (pyinstrument).

For the engineer on call who needs to see what a running web process spends its time
on without shell access: a signed-in admin posts the form on the dashboard and
downloads a pyinstrument HTML report (or a speedscope JSON flame graph). The profiler
samples the event loop's thread, so it sees every request the process handles
meanwhile. One profile at a time per process (409 otherwise), at most
``MAX_SECONDS``, ended early when the process drains. For workers, or from outside, use
py-spy (docs/OPERATIONS.md).
"""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime

from fastapi import APIRouter, Depends
from pyinstrument import Profiler
from pyinstrument.renderers.speedscope import SpeedscopeRenderer
from starlette.requests import Request
from starlette.responses import Response

from herald.auth.web import require_admin
from herald.core.errors import Conflict, ValidationError
from herald.web import csrf
from herald.web.forms import read_form
from herald.web.state import State

# An operator tool: admins only (editors get 403).
router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])

MAX_SECONDS = 60
FORMATS = {"html": ("text/html", "html"), "speedscope": ("application/json", "speedscope.json")}
_running = asyncio.Lock()


def parse_seconds(raw: str) -> float:
    try:
        seconds = float(raw)
    except ValueError:
        raise ValidationError("seconds must be a number") from None
    if not 1 <= seconds <= MAX_SECONDS:
        raise ValidationError(f"seconds must be between 1 and {MAX_SECONDS}")
    return seconds


@router.post("/profile")
async def profile(request: Request, state: State) -> Response:
    form = await read_form(request)
    csrf.check(request, state.settings, form.get(csrf.FORM_FIELD))
    seconds = parse_seconds(form.get("seconds", "10"))
    kind = form.get("format", "html")
    if kind not in FORMATS:
        raise ValidationError(f"format must be one of {', '.join(FORMATS)}")
    if _running.locked():
        raise Conflict("a profile of this process is already running; try again when it ends")
    async with _running:
        profiler = Profiler(interval=0.001, async_mode="disabled")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        profiler.start()
        try:
            # Cut short when the process starts draining (a plain flag, looked at every
            # half second): a profile never holds a shutdown up.
            for _ in range(math.ceil(seconds / 0.5)):
                left = deadline - loop.time()
                if left <= 0 or state.draining:
                    break
                await asyncio.sleep(min(left, 0.5))
        finally:
            profiler.stop()
    body = (
        profiler.output_html() if kind == "html" else profiler.output(renderer=SpeedscopeRenderer())
    )
    media_type, suffix = FORMATS[kind]
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        body,
        media_type=media_type,
        headers={
            "Content-Disposition": f'attachment; filename="herald-profile-{stamp}.{suffix}"',
            "Cache-Control": "no-store",
        },
    )
