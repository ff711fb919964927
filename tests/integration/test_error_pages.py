"""HTML errors under /admin for someone signed in are pages of the admin: the navigation
for their role, the account menu (with a working sign-out), the message and a way back.
Signed out, on public paths, and for JSON clients, errors stay as they were."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from fastapi import Depends

from herald.auth.domain import Role
from herald.auth.web import ADMINS_ONLY, require_session
from herald.composition.app import create_app
from herald.core.config import Settings
from herald.core.db import Database
from herald.web.cookies import SESSION_COOKIE
from tests.support.newsletters import CSRF, add_user, log_in

HTML = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
NAV = re.compile(r'<nav class="mainnav" aria-label="Main">(.*?)</nav>', re.S)


@pytest.fixture
async def admin(client: httpx.AsyncClient, db: Database, settings: Settings) -> httpx.AsyncClient:
    await add_user(db, settings, "admin", Role.ADMIN)
    await log_in(client)
    return client


def nav_links(html: str) -> list[str]:
    found = NAV.search(html)
    assert found, "no main navigation"
    return re.findall(r">([^<]+)</a>", found.group(1))


def back_link(html: str) -> str:
    found = re.search(r'<a class="button" href="([^"]+)">Back to ', html)
    assert found, html
    return found.group(1)


async def test_an_editor_refused_an_admin_page_stays_in_the_admin(
    editor: httpx.AsyncClient,
) -> None:
    for path in ("/admin/users", "/admin/settings", "/admin/api-keys"):
        page = await editor.get(path, headers=HTML)
        assert page.status_code == 403, path
        assert page.headers["content-type"].startswith("text/html")
        assert nav_links(page.text) == [
            "Dashboard",
            "Issues",
            "Subscribers",
            "Lists",
            "Segments",
            "Templates",
        ]  # no Settings
        assert "Signed in as <strong>ed</strong>" in page.text  # the account menu
        assert ADMINS_ONLY in page.text
        assert "an editor" in page.text
        assert back_link(page.text) == "/admin/dashboard"
        assert page.headers["cache-control"] == "no-store"

    # The page's sign-out form works like any other page's.
    page = await editor.get("/admin/users", headers=HTML)
    token = CSRF.search(page.text)
    assert token
    signed_out = await editor.post("/admin/logout", data={"csrf_token": token.group(1)})
    assert signed_out.status_code == 303
    assert (await editor.get("/admin/dashboard")).headers["location"] == "/login"


@pytest.mark.parametrize(
    ("path", "back", "says"),
    [
        (f"/admin/issues/{uuid.uuid4()}", "/admin/issues", "No such newsletter issue."),
        (f"/admin/issues/{uuid.uuid4()}/edit", "/admin/issues", "No such newsletter issue."),
        (f"/admin/subscribers/{uuid.uuid4()}", "/admin/subscribers", "No such subscriber."),
        ("/admin/nonsense", "/admin/dashboard", "There is no page at this address."),
        ("/admin/issues/nonsense/more", "/admin/issues", "There is no page at this address."),
    ],
)
async def test_not_found_under_admin_is_an_admin_page_with_a_way_back(
    admin: httpx.AsyncClient, path: str, back: str, says: str
) -> None:
    page = await admin.get(path, headers=HTML)
    assert page.status_code == 404, page.text
    assert nav_links(page.text) == [
        "Dashboard",
        "Issues",
        "Subscribers",
        "Lists",
        "Segments",
        "Templates",
        "Settings",
    ]
    assert "Signed in as <strong>admin</strong>" in page.text
    assert 'name="csrf_token"' in page.text
    assert says in page.text
    assert back_link(page.text) == back
    assert (await admin.get(back)).status_code == 200


async def test_an_editor_sees_the_not_found_page_with_an_editors_navigation(
    editor: httpx.AsyncClient,
) -> None:
    page = await editor.get("/admin/nonsense", headers=HTML)
    assert page.status_code == 404
    assert nav_links(page.text) == [
        "Dashboard",
        "Issues",
        "Subscribers",
        "Lists",
        "Segments",
        "Templates",
    ]


async def test_errors_stay_as_they_were_signed_out_elsewhere_and_for_json(
    client: httpx.AsyncClient, admin: httpx.AsyncClient
) -> None:
    # Signed in, but a public path: the public page.
    public = await admin.get("/nonsense", headers=HTML)
    assert public.status_code == 404
    assert 'class="mainnav"' not in public.text
    assert 'href="/">Back to the home page' in public.text
    # JSON and text clients under /admin, and the API whatever it accepts.
    as_json = await admin.get("/admin/nonsense", headers={"Accept": "application/json"})
    assert as_json.status_code == 404
    assert as_json.json() == {"error": "not_found", "message": "Not Found"}
    assert (await admin.get("/admin/nonsense")).text == "Not Found\n"
    api = await admin.get("/api/v1/nonsense", headers=HTML)
    assert api.headers["content-type"].startswith("application/problem+json")
    # Signed out: the public page for an unknown path, the sign-in page for a known one.
    token = CSRF.search((await admin.get("/admin/dashboard")).text)
    assert token
    await admin.post("/admin/logout", data={"csrf_token": token.group(1)})
    unknown = await client.get("/admin/nonsense", headers=HTML)
    assert unknown.status_code == 404
    assert 'class="mainnav"' not in unknown.text
    known = await client.get(f"/admin/issues/{uuid.uuid4()}", headers=HTML)
    assert known.status_code == 303
    assert known.headers["location"] == "/login"
    # A stale session cookie is as good as none.
    client.cookies.set(SESSION_COOKIE, "stale-token")
    stale = await client.get("/admin/nonsense", headers=HTML)
    assert stale.status_code == 404
    assert 'class="mainnav"' not in stale.text


async def test_an_unexpected_error_under_admin_is_a_500_in_the_admin_frame(
    settings: Settings, db: Database
) -> None:
    """The request middleware's 500 (anything unexpected) goes through the same page: the
    session the route's dependency read is on the request's state."""

    async def boom() -> None:
        raise RuntimeError("a bug")

    await add_user(db, settings, "admin", Role.ADMIN)
    app = create_app(settings, db=db)
    app.add_api_route("/admin/boom", boom, dependencies=[Depends(require_session)])
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://herald.test") as c:
            await log_in(c)
            page = await c.get("/admin/boom", headers=HTML)
            assert page.status_code == 500
            assert nav_links(page.text) == [
                "Dashboard",
                "Issues",
                "Subscribers",
                "Lists",
                "Segments",
                "Templates",
                "Settings",
            ]
            assert "request id" in page.text
            assert "a bug" not in page.text
            assert back_link(page.text) == "/admin/dashboard"
            as_json = await c.get("/admin/boom", headers={"Accept": "application/json"})
            assert as_json.json()["error"] == "internal_error"
