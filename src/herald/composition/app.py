"""Build the ASGI application. Feature routers are mounted here and nowhere else."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from herald import __version__
from herald.admin import (
    branding,
    dashboard,
    dev_outbox,
    issues,
    layouts,
    live,
    newsletters,
    profiling,
    subscribers,
    users,
)
from herald.admin import lists as admin_lists
from herald.admin import routes as admin
from herald.admin import segments as admin_segments
from herald.admin import settings as admin_settings
from herald.admin import suppressions as admin_suppressions
from herald.admin import webhooks as admin_webhooks
from herald.admin import welcomes as admin_welcomes
from herald.api import imports as api_imports
from herald.api import issues as api_issues
from herald.api import lists as api_lists
from herald.api import routes as api
from herald.api import segments as api_segments
from herald.api import subscribers as api_subscribers
from herald.api import suppressions as api_suppressions
from herald.api import users as api_users
from herald.api import webhooks as api_webhooks
from herald.archive import routes as archive
from herald.auth import routes as auth
from herald.auth import web as auth_web
from herald.auth.passwords import Passwords
from herald.composition.housekeeping import run as run_housekeeping
from herald.composition.metrics import run_gauges
from herald.core import live as live_events
from herald.core import tracing
from herald.core.config import Settings
from herald.core.db import Database
from herald.deliverability import routes as deliverability
from herald.deliverability import ses_routes
from herald.design import routes as design
from herald.engagement import routes as engagement
from herald.imports import routes as import_pages
from herald.issues import progress
from herald.issues import routes as issue_pages
from herald.issues.progress import ProgressHub, dedicated_connection
from herald.issues.service import IssueService
from herald.lists import routes as list_pages
from herald.preferences import routes as preferences
from herald.subscriptions import routes as subscriptions
from herald.subscriptions.welcoming import Welcomer
from herald.web import docs, errors, health
from herald.web.middleware import (
    MIB,
    BodySizeLimitMiddleware,
    RequestContextMiddleware,
    RouteBodyLimit,
)
from herald.web.security import SecurityHeadersMiddleware
from herald.web.state import AppState
from herald.welcomes.service import WelcomeSender

# The admin forms that carry an issue's bodies accept 2 MiB: URL-encoded HTML from email
# builders is routinely 50-150 KB. Every other route keeps the 64 KiB default.
# tests/integration/test_body_limits.py posts to each, so a renamed route cannot slip back.
ISSUE_FORM_MAX_BYTES = 2 * MIB
ISSUE_FORMS = [
    RouteBodyLimit("POST", "/admin/newsletters", ISSUE_FORM_MAX_BYTES),
    RouteBodyLimit("POST", "/admin/issues/new", ISSUE_FORM_MAX_BYTES),
    RouteBodyLimit("POST", "/admin/issues/{issue_id}/edit", ISSUE_FORM_MAX_BYTES),
    RouteBodyLimit("POST", "/admin/issues/preview", ISSUE_FORM_MAX_BYTES),  # the editor's
    # A layout's MJML (200,000 characters at most) and the logo upload (512 KB and its form).
    RouteBodyLimit("POST", "/admin/templates/{layout_id}/edit", ISSUE_FORM_MAX_BYTES),
    RouteBodyLimit("POST", "/admin/templates/preview", ISSUE_FORM_MAX_BYTES),
    # A list's welcome email (20,000 characters of Markdown, URL-encoded) and its preview.
    RouteBodyLimit("POST", "/admin/lists/{list_id}/welcome", admin_welcomes.FORM_MAX_BYTES),
    RouteBodyLimit("POST", "/admin/lists/{list_id}/welcome/preview", admin_welcomes.FORM_MAX_BYTES),
    RouteBodyLimit("POST", "/admin/settings/branding/logo", branding.LOGO_FORM_MAX_BYTES),
    # The JSON API's issue bodies, as the forms'.
    RouteBodyLimit("POST", "/api/v1/issues", ISSUE_FORM_MAX_BYTES),
    # CSV imports: spooled to a temporary file by the form parser, copied into job_files.
    RouteBodyLimit("POST", "/admin/subscribers/import", import_pages.UPLOAD_MAX_BYTES),
    RouteBodyLimit("POST", "/api/v1/imports", import_pages.UPLOAD_MAX_BYTES),
    RouteBodyLimit("PUT", "/api/v1/issues/{issue_id}", ISSUE_FORM_MAX_BYTES),
    # Postmark's webhook records; a bounce or complaint with its dump ("include content").
    RouteBodyLimit("POST", "/webhooks/postmark", deliverability.POSTMARK_MAX_BYTES),
    # Amazon SES's notifications through SNS (an SNS message is at most 256 KiB).
    RouteBodyLimit("POST", "/webhooks/ses", ses_routes.SES_MAX_BYTES),
]
# The providers' webhooks: their successful calls go to the access log at debug level (a
# bounce storm is 100,000 calls a minute; the recorder logs one line per batch of them).
QUIET_ROUTES = ("/webhooks/",)


def _app_state(
    settings: Settings, database: Database, passwords: Passwords, hub: ProgressHub
) -> AppState:
    """What every request reaches: settings, the database and this process's parts."""
    state = AppState(settings=settings, db=database)
    state.provide(Passwords, passwords)
    state.provide(ProgressHub, hub)
    state.provide(errors.SessionLookup, errors.SessionLookup(auth_web.session_of))
    # Confirmations queue the lists' welcome emails (subscriptions and preferences).
    state.provide(Welcomer, WelcomeSender(settings))
    return state


def create_app(
    settings: Settings,
    *,
    dsn: str | None = None,
    db: Database | None = None,
    housekeeping: bool = False,
    metrics_gauges: bool = False,
    listen_dsn: str | None = None,
    on_started: Callable[[AppState], None] | None = None,
) -> FastAPI:
    """An app that opens its own pool from ``dsn`` at startup, or uses a given ``db``.

    ``housekeeping``: run the periodic clean-up inside this app (for web processes
    started by uvicorn's supervisor, which have no runtime of their own).
    ``metrics_gauges``: take part in the election of the process that computes the queue
    and issue gauges, when ``HERALD_METRICS__PORT`` is set (the same processes).
    ``listen_dsn``: Postgres itself, where the live-progress hub opens its one LISTEN
    connection and the gauge election takes its lock (default ``dsn``; with neither, the
    hub holds one connection of the pool).
    ``on_started``: called with the app state once startup is done.
    """
    if (dsn is None) == (db is None):
        raise ValueError("give exactly one of dsn or db")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = db is None
        database = (
            db if db is not None else await Database.open(str(dsn), settings.db, "herald-web")
        )
        passwords = Passwords(threads=settings.auth.hashing_threads)
        await passwords.warm_up()
        listen = listen_dsn or dsn
        hub = ProgressHub(
            dedicated_connection(listen, settings.db) if listen else database.connection
        )
        app.state.herald = _app_state(settings, database, passwords, hub)
        live_parts = _LiveParts.start(app.state.herald, listen)
        stop = asyncio.Event()
        cleaner = (
            asyncio.create_task(run_housekeeping(database, settings, stop))
            if housekeeping
            else None
        )
        gauges = (
            asyncio.create_task(run_gauges(listen, settings, stop))
            if metrics_gauges and listen is not None and settings.metrics.port is not None
            else None
        )
        if on_started is not None:
            on_started(app.state.herald)
        try:
            yield
        finally:
            app.state.herald.draining = True
            stop.set()
            await hub.stop()  # ends the open progress streams
            await live_parts.stop()
            if cleaner is not None:
                await cleaner
            if gauges is not None:
                await gauges
            passwords.close()
            if own:
                await database.close()
            # A `serve --workers N` child is ended by its re-raised SIGTERM, never reaching
            # exit hooks: its spans go now (bounded: a hung collector costs 5 s at most).
            await asyncio.to_thread(tracing.flush)

    app = docs.HeraldAPI(
        title="Herald",
        summary="The JSON API of a Herald newsletter service.",
        version=__version__,
        lifespan=lifespan,
        # Herald serves its own /docs (assets from /static, CSP nonce): see web/docs.py.
        docs_url=None,
        redoc_url=None,
        openapi_url=None if settings.is_production else docs.OPENAPI_URL,
        openapi_tags=api.TAGS,
        # Herald traces and counts requests itself (core.tracing, core.metrics). FastAPI's
        # own telemetry would otherwise look for a global OpenTelemetry provider on every
        # request, and emit a second server span per request wherever one is installed.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    errors.install(app)
    # issue_pages: GET /v/{token}, a reader's web copy of an issue ("view in browser")
    for feature in (
        health,
        # POST /webhooks/postmark and /webhooks/ses, early: a bounce storm's requests match
        # them without walking every admin route first (FastAPI tries routes in order).
        deliverability,
        ses_routes,
        subscriptions,
        issue_pages,
        engagement,  # GET /t/o/{token}.gif, /t/c/{token}/{n}: opt-in engagement tracking
        preferences,  # /preferences?token=…: the reader's preference centre
        admin_suppressions,  # /admin/suppressions
        auth,
        admin,
        newsletters,
        issues,
        import_pages,  # /admin/subscribers/import and …/export, before …/{subscriber_id}
        subscribers,
        design,  # GET /brand/logo/{sha256}.{ext}: public, the logos emails show
        archive,  # /archive/{list}: public issues' pages and feeds
        branding,  # /admin/settings/branding
        layouts,  # /admin/templates
        admin_segments,  # /admin/segments
        api_subscribers,  # /api/v1/subscribers (api.router, below: auth, /me, API keys)
        api_issues,  # /api/v1/issues
        api_segments,  # /api/v1/segments
        api_lists,  # /api/v1/lists
        api_suppressions,  # /api/v1/suppressions
        list_pages,  # GET /l/{slug}: a public list's sign-up page
        admin_lists,  # /admin/lists
        admin_welcomes,  # /admin/lists/{id}/welcome: a list's welcome email
        api_users,  # /api/v1/users (admins only)
        api_imports,  # /api/v1/imports, /api/v1/exports
        api_webhooks,  # /api/v1/webhooks (admins only)
        admin_webhooks,  # /admin/webhooks: outgoing webhook endpoints and their failures
    ):
        app.include_router(feature.router)
    app.include_router(dashboard.router)  # /admin/dashboard and its figures
    app.include_router(users.router)  # /admin/users
    app.include_router(admin_settings.router)  # /admin/settings
    app.include_router(profiling.router)
    app.include_router(live.router)  # GET /admin/live, the WebSocket
    app.include_router(api.router)
    if not settings.is_production:
        app.include_router(docs.router)
        app.include_router(dev_outbox.router)
    app.mount("/static", StaticFiles(packages=[("herald.web", "static")]), name="static")
    _add_middleware(app, settings)
    return app


@dataclass
class _LiveParts:
    """The live WebSocket's hub, fed by one LISTEN connection (opened with the first
    socket): ``herald_live`` events as they are, ``herald_progress`` through the relay."""

    hub: live_events.LiveHub
    relay: live.ProgressRelay
    listener: live_events.Listener

    @classmethod
    def start(cls, state: AppState, listen: str | None) -> _LiveParts:
        settings, database = state.settings, state.db
        listener = live_events.Listener(
            live_events.dedicated_connection(listen, settings.db, "herald-live")
            if listen
            else database.connection
        )
        hub = live_events.LiveHub(on_first_subscriber=listener.start)
        relay = live.ProgressRelay(hub, IssueService(database, settings).progress)
        listener.on(live_events.CHANNEL, hub.publish)
        listener.on(progress.CHANNEL, relay.on_notify)

        def resync() -> None:
            if listener.connects > 1:  # events may have been missed while it was down
                hub.publish(live_events.event("resync"))

        listener.on_connect(resync)
        state.provide(live_events.LiveHub, hub)
        state.provide(live_events.Listener, listener)
        state.on_drain(hub.drain)  # the sockets close with 1001 at once
        return cls(hub, relay, listener)

    async def stop(self) -> None:
        self.hub.drain()
        await self.listener.stop()
        await self.relay.stop()


def _add_middleware(app: FastAPI, settings: Settings) -> None:
    # Added last = outermost: the request id and the security headers cover even a 413,
    # and the request's server span (when tracing is on) covers everything.
    app.add_middleware(BodySizeLimitMiddleware, routes=ISSUE_FORMS)
    app.add_middleware(SecurityHeadersMiddleware, production=settings.is_production)
    app.add_middleware(RequestContextMiddleware, quiet_prefixes=QUIET_ROUTES)
    tracing.add_server_spans(app)
