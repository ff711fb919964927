"""``GET /admin/dashboard``: subscribers by status, the audience's growth and the day's
sign-ups, confirmations and unsubscribes over 30, 90 or 365 UTC days, the last issues
with their results, the delivery queue; and ``GET /admin/dashboard/figures``, the same
figures as JSON for the page's live tiles (``web/static/dashboard.js`` updates them on
``herald:live`` events and refetches this after a ``resync`` or a bulk change).

Every figure comes from maintained counters (``subscriber_counts``, ``subscriber_daily``)
or the issue list's grouped query over not-yet-sent deliveries: no count of the
subscribers per view.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from herald.admin.issue_editor import issue_views
from herald.auth.web import CurrentSession, require_session
from herald.issues.views import IssueResults
from herald.subscriptions.audience import PERIODS, Audience, AudienceStats, parse_period
from herald.web.pages import page
from herald.web.state import AppState, State

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_session)])

LAST_ISSUES = 5
Days = Annotated[str | None, Query(description="30, 90 or 365")]


@dataclass(frozen=True, slots=True)
class Dashboard:
    audience: Audience
    issues: list[IssueResults]

    def as_json(self) -> dict[str, object]:
        return {
            **self.audience.as_json(),
            "issues": [
                {
                    "issue_id": str(row.issue.id),
                    "status": row.issue.status.value,
                    "recipients": row.issue.recipients,
                    "sent": row.sent,
                    "failed": row.count("failed"),
                    "suppressed": row.count("suppressed"),
                    "hard_bounces": row.feedback.count("hard_bounce"),
                    "complaints": row.feedback.count("complaint"),
                    "bounce_rate": row.feedback.bounce_rate,
                    "complaint_rate": row.feedback.complaint_rate,
                }
                for row in self.issues
            ],
        }


async def load(state: AppState, period: int) -> Dashboard:
    """The audience figures and the last issues, read side by side."""
    audience, issues = await asyncio.gather(
        AudienceStats(state.db, state.settings).audience(period),
        issue_views(state).issue_list(limit=LAST_ISSUES),
    )
    return Dashboard(audience, issues.rows)


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard(
    request: Request, state: State, session: CurrentSession, days: Days = None
) -> Response:
    figures = await load(state, parse_period(days))
    return page(
        request,
        "admin/dashboard.html",
        username=session.username,
        board=figures,
        periods=PERIODS,
        figures_json=figures.as_json(),
    )


@router.get("/dashboard/figures")
async def dashboard_figures(state: State, days: Days = None) -> Response:
    figures = await load(state, parse_period(days))
    return JSONResponse(figures.as_json(), headers={"Cache-Control": "no-store"})
