"""Health endpoints: the zero2prod check, a liveness probe and a readiness probe.

Liveness never touches a dependency (a database outage must not make an
orchestrator restart healthy web processes in a loop); readiness does.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse, Response

from herald.web.state import State

router = APIRouter(tags=["health"])


@router.get("/health_check")
async def health_check() -> Response:
    return Response(status_code=200)


@router.get("/health/live")
async def live() -> Response:
    return JSONResponse({"status": "alive"})


@router.get("/health/ready")
async def ready(state: State) -> Response:
    if state.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    if not await state.db.ping(timeout=2.0):
        return JSONResponse(
            {"status": "unavailable", "database": "unreachable"},
            status_code=503,
            headers={"Retry-After": "1"},
        )
    return JSONResponse({"status": "ready", "database": "ok"})
