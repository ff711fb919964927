"""POST /admin/profile: an admin-only, one-at-a-time, time-boxed pyinstrument profile."""

from __future__ import annotations

import asyncio
import json

import httpx

from herald.admin import profiling
from herald.core.db import Database
from tests.integration.test_issue_hardening import stored_issue
from tests.support.newsletters import CSRF
from tests.support.queue import wait_until


async def csrf_token(client: httpx.AsyncClient) -> str:
    found = CSRF.search((await client.get("/admin/dashboard")).text)
    assert found
    return found.group(1)


async def test_an_admin_downloads_an_html_profile_of_the_process(
    admin_client: httpx.AsyncClient,
) -> None:
    token = await csrf_token(admin_client)
    running = asyncio.create_task(
        admin_client.post("/admin/profile", data={"csrf_token": token, "seconds": "1"})
    )
    while not running.done():  # requests handled meanwhile are in the profile
        await admin_client.get("/health/live")
        await asyncio.sleep(0)  # an in-process request never yields: let the profile's timer run
    response = await running
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-disposition"].startswith("attachment; filename=")
    assert "pyinstrument" in response.text
    assert "web/middleware.py" in response.text  # the requests handled meanwhile


async def test_speedscope_format_is_json(admin_client: httpx.AsyncClient) -> None:
    token = await csrf_token(admin_client)
    response = await admin_client.post(
        "/admin/profile", data={"csrf_token": token, "seconds": "1", "format": "speedscope"}
    )
    assert response.status_code == 200
    assert "speedscope" in json.loads(response.text)["$schema"]


async def test_one_profile_at_a_time(admin_client: httpx.AsyncClient) -> None:
    token = await csrf_token(admin_client)
    first = asyncio.create_task(
        admin_client.post("/admin/profile", data={"csrf_token": token, "seconds": "2"})
    )
    await wait_until(profiling._running.locked)  # the first profile is running
    second = await admin_client.post("/admin/profile", data={"csrf_token": token, "seconds": "1"})
    assert second.status_code == 409
    assert "already running" in second.text
    assert (await first).status_code == 200


async def test_the_time_box_and_the_format_are_checked(admin_client: httpx.AsyncClient) -> None:
    token = await csrf_token(admin_client)
    for data in ({"seconds": "0"}, {"seconds": "61"}, {"seconds": "x"}, {"format": "svg"}):
        response = await admin_client.post("/admin/profile", data={"csrf_token": token, **data})
        assert response.status_code == 400, data


async def test_anonymous_and_csrf_less_requests_are_refused(client: httpx.AsyncClient) -> None:
    anonymous = await client.post("/admin/profile", data={"seconds": "1"})
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login"


async def test_a_post_without_the_csrf_token_is_refused(admin_client: httpx.AsyncClient) -> None:
    no_token = await admin_client.post("/admin/profile", data={"seconds": "1"})
    assert no_token.status_code == 403


async def test_a_profile_after_a_timed_out_render_completes(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    # The time box used to leave CPython's "async exception pending" signal up after a
    # render thread finished; under pyinstrument's hook the event loop then spun forever
    # inside the profile's sleep. A render stopped by the time limit, then a profile:
    slow = await stored_issue(
        db, "{% for a in range(5000) %}{% for b in range(5000) %}{{ '' }}{% endfor %}{% endfor %}"
    )
    preview = await admin_client.get(f"/admin/issues/{slow}/preview")
    assert preview.status_code == 400
    token = await csrf_token(admin_client)
    response = await asyncio.wait_for(
        admin_client.post("/admin/profile", data={"csrf_token": token, "seconds": "1"}), 30
    )
    assert response.status_code == 200
