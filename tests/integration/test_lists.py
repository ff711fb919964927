"""Lists: the service's rules (slugs, the default list, deletion), the admin pages under
/admin/lists, the public page /l/{slug} and the form snippet posted from another site."""

from __future__ import annotations

import asyncio
import re
import uuid

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Conflict, NotFound, ValidationError
from herald.lists.domain import ListChange, ListDraft, MemberStatus
from herald.lists.service import SHOWN_LISTS, ListService
from tests.support.newsletters import CSRF, add_subscribers, log_in


@pytest.fixture
def service(db: Database, settings: Settings) -> ListService:
    return ListService(db, settings)


async def _csrf(client: httpx.AsyncClient, path: str) -> str:
    page = await client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found
    return found.group(1)


async def _members(db: Database, list_id: uuid.UUID, ids: list[uuid.UUID], status: str) -> None:
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
            " VALUES ($1, $2, $3, 'test')",
            [(list_id, i, status) for i in ids],
        )


async def _target(db: Database, list_id: uuid.UUID, title: str = "Spring issue") -> None:
    async with db.connection() as conn:
        issue = await conn.fetchval(
            "INSERT INTO newsletter_issues (id, title, text_content, html_content)"
            " VALUES (gen_random_uuid(), $1, 'x', '<p>x</p>') RETURNING id",
            title,
        )
        await conn.execute(
            "INSERT INTO issue_lists (issue_id, list_id) VALUES ($1, $2)", issue, list_id
        )


# --- service ---------------------------------------------------------------------------


async def test_create_get_update_and_counts(service: ListService, db: Database) -> None:
    created = await service.create(ListDraft.parse(name="Weekly Digest", description=" Hi "))
    assert (created.slug, created.name, created.description) == (
        "weekly-digest",
        "Weekly Digest",
        "Hi",
    )
    assert created.counts.total == 0
    readers = await add_subscribers(db, 3)
    await _members(db, created.id, readers[:2], "confirmed")
    await _members(db, created.id, readers[2:], "pending_confirmation")
    got = await service.get(created.id)
    assert (got.counts.confirmed, got.counts.pending, got.counts.unsubscribed) == (2, 1, 0)
    changed = await service.update(created.id, ListChange.parse(name="Digest", opt_in="single"))
    assert (changed.name, changed.slug, changed.opt_in.value) == (
        "Digest",
        "weekly-digest",
        "single",
    )
    names = [lst.slug for lst in (await service.lists()).lists]
    assert names == ["default", "weekly-digest"]
    # Members from add_subscribers joined the default list through 0018's trigger.
    default = next(lst for lst in (await service.lists()).lists if lst.is_default)
    assert default.counts.confirmed == 3


async def test_a_taken_slug_is_a_conflict(service: ListService) -> None:
    await service.create(ListDraft.parse(name="A", slug="news"))
    with pytest.raises(Conflict, match="news"):
        await service.create(ListDraft.parse(name="B", slug="news"))
    other = await service.create(ListDraft.parse(name="C", slug="other"))
    with pytest.raises(Conflict, match="news"):
        await service.update(other.id, ListChange.parse(slug="news"))
    assert (await service.get(other.id)).slug == "other"


async def test_concurrent_creates_of_one_slug_make_one_list(service: ListService) -> None:
    results = await asyncio.gather(
        *(service.create(ListDraft.parse(name=f"N{i}", slug="race")) for i in range(8)),
        return_exceptions=True,
    )
    made = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, Conflict)]
    assert len(made) == 1
    assert len(refused) == 7
    assert [lst.slug for lst in (await service.lists()).lists].count("race") == 1


async def test_the_default_list_keeps_its_slug_and_is_never_deleted(service: ListService) -> None:
    default = next(lst for lst in (await service.lists()).lists if lst.is_default)
    with pytest.raises(ValidationError, match="default list's slug") as caught:
        await service.update(default.id, ListChange.parse(slug="renamed"))
    assert caught.value.field == "slug"
    renamed = await service.update(default.id, ListChange.parse(name="The Herald"))
    assert (renamed.slug, renamed.name) == ("default", "The Herald")
    with pytest.raises(Conflict, match="default list cannot be deleted"):
        await service.delete(default.id, confirmed=True)


async def test_delete_asks_when_there_are_members_and_refuses_a_targeted_list(
    service: ListService, db: Database
) -> None:
    empty = await service.create(ListDraft.parse(name="Empty"))
    assert (await service.delete(empty.id, confirmed=False)).deleted
    full = await service.create(ListDraft.parse(name="Full"))
    readers = await add_subscribers(db, 2)
    await _members(db, full.id, readers, "confirmed")
    outcome = await service.delete(full.id, confirmed=False)
    assert not outcome.deleted
    assert outcome.news_list.counts.confirmed == 2
    targeted = await service.create(ListDraft.parse(name="Targeted"))
    await _target(db, targeted.id, "Spring issue")
    with pytest.raises(Conflict, match="'Spring issue'"):
        await service.delete(targeted.id, confirmed=True)
    assert (await service.delete(full.id, confirmed=True)).deleted
    with pytest.raises(NotFound):
        await service.get(full.id)
    async with db.connection() as conn:  # the subscribers stay, in their other lists
        assert await conn.fetchval("SELECT count(*) FROM subscriptions") == 2
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM list_member_counts WHERE list_id = $1", full.id
            )
            == 0
        )


async def test_public_lists_only(service: ListService) -> None:
    await service.create(ListDraft.parse(name="Open", slug="open"))
    await service.create(ListDraft.parse(name="Closed", slug="closed", visibility="private"))
    assert (await service.public("open")).name == "Open"
    for slug in ("closed", "nope", "x" * 500, "Open"):
        with pytest.raises(NotFound):
            await service.public(slug)


async def test_members_by_api_respect_the_reader(service: ListService, db: Database) -> None:
    lst = await service.create(ListDraft.parse(name="Letters"))
    pending, confirmed, gone = await add_subscribers(db, 3, status="pending_confirmation")
    async with db.connection() as conn:
        await conn.execute("UPDATE subscriptions SET status = 'confirmed' WHERE id = $1", confirmed)
        await conn.execute("UPDATE subscriptions SET status = 'unsubscribed' WHERE id = $1", gone)
    added = await service.add_member(lst.id, confirmed, MemberStatus.CONFIRMED, "api:ci")
    assert added.created
    assert (added.member.status, added.member.source, added.member.mailed) == (
        MemberStatus.CONFIRMED,
        "api:ci",
        True,
    )
    again = await service.add_member(lst.id, confirmed, MemberStatus.PENDING, "api:ci")
    assert not again.created
    assert again.member.status is MemberStatus.CONFIRMED  # never downgraded
    waiting = await service.add_member(lst.id, pending, MemberStatus.CONFIRMED, "api:ci")
    assert waiting.member.status is MemberStatus.CONFIRMED
    assert not waiting.member.mailed  # the address itself is not confirmed yet
    with pytest.raises(Conflict, match="unsubscribed from everything"):
        await service.add_member(lst.id, gone, MemberStatus.CONFIRMED, "api:ci")
    left = await service.remove_member(lst.id, confirmed)
    assert left.status is MemberStatus.UNSUBSCRIBED
    assert (await service.remove_member(lst.id, confirmed)).unsubscribed_at == left.unsubscribed_at
    with pytest.raises(Conflict, match="left this list"):
        await service.add_member(lst.id, confirmed, MemberStatus.CONFIRMED, "api:ci")
    with pytest.raises(NotFound, match="no such subscriber"):
        await service.add_member(lst.id, uuid.uuid4(), MemberStatus.CONFIRMED, "api:ci")
    with pytest.raises(NotFound, match="not a member"):
        await service.remove_member(lst.id, gone)


async def test_a_suppressed_address_is_not_added(service: ListService, db: Database) -> None:
    lst = await service.create(ListDraft.parse(name="Letters"))
    (reader,) = await add_subscribers(db, 1)
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO suppressions (address_key, reason) VALUES"
            " (herald_address_key(' READER0@example.com'), 'complaint')"
        )
    with pytest.raises(Conflict, match="suppression list"):
        await service.add_member(lst.id, reader, MemberStatus.CONFIRMED, "api:ci")


# --- admin pages -----------------------------------------------------------------------


async def test_anonymous_visitors_go_to_login(client: httpx.AsyncClient) -> None:
    for method, path in (("GET", "/admin/lists"), ("POST", "/admin/lists")):
        response = await client.request(method, path)
        assert response.status_code == 303
        assert response.headers["location"] == "/login"


async def test_an_editor_creates_edits_and_deletes_a_list(
    client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    from herald.auth.domain import Role
    from herald.auth.service import AuthService
    from tests.support.auth import fast_passwords
    from tests.support.newsletters import PASSWORD

    passwords = fast_passwords()
    try:
        await AuthService(db, settings, passwords).create_user("ed", PASSWORD, Role.EDITOR)
    finally:
        passwords.close()
    await log_in(client, "ed")
    page = await client.get("/admin/lists")
    assert page.status_code == 200
    assert 'href="/admin/lists" aria-current="page"' in page.text
    form = await client.get("/admin/lists/new")
    assert 'pattern="[a-z0-9]+(-[a-z0-9]+)*"' in form.text  # the domain's slug rule
    token = await _csrf(client, "/admin/lists/new")
    made = await client.post(
        "/admin/lists",
        data={
            "csrf_token": token,
            "name": "Field Notes",
            "slug": "",
            "description": "Notes from the field.",
            "visibility": "public",
            "opt_in": "double",
        },
    )
    assert made.status_code == 303
    where = made.headers["location"]
    shown = await client.get(where)
    assert "The list Field Notes has been created." in shown.text
    assert "field-notes" in shown.text
    assert (
        "&lt;form method=&#34;post&#34; action=&#34;http://herald.test/subscriptions&#34;"
        in shown.text
    )
    token = await _csrf(client, where)
    saved = await client.post(
        where,
        data={
            "csrf_token": token,
            "name": "Field Notes",
            "slug": "notes",
            "description": "",
            "visibility": "private",
            "opt_in": "single",
        },
    )
    assert saved.status_code == 303
    service = ListService(db, settings)
    (notes,) = [lst for lst in (await service.lists()).lists if not lst.is_default]
    assert (notes.slug, notes.visibility.value, notes.opt_in.value) == (
        "notes",
        "private",
        "single",
    )
    gone = await client.post(f"{where}/delete", data={"csrf_token": token})
    assert gone.status_code == 303
    assert gone.headers["location"] == "/admin/lists"
    assert [lst.slug for lst in (await service.lists()).lists] == ["default"]


async def test_refused_values_show_the_form_again(
    admin_client: httpx.AsyncClient, service: ListService
) -> None:
    await service.create(ListDraft.parse(name="Taken", slug="taken"))
    token = await _csrf(admin_client, "/admin/lists/new")
    base = {"csrf_token": token, "visibility": "public", "opt_in": "double", "description": ""}
    bad = await admin_client.post("/admin/lists", data={**base, "name": "X", "slug": "Bad Slug"})
    assert bad.status_code == 400
    assert "Slug may only hold" in bad.text
    assert 'value="Bad Slug"' in bad.text
    taken = await admin_client.post("/admin/lists", data={**base, "name": "Y", "slug": "taken"})
    assert taken.status_code == 409
    assert "already exists" in taken.text
    huge = await admin_client.post(
        "/admin/lists", data={**base, "name": "Z", "description": "d" * 5000}
    )
    assert huge.status_code == 400
    assert "description is longer than 1000" in huge.text.lower()
    odd = await admin_client.post(
        "/admin/lists", data={**base, "name": "W", "visibility": "secret"}
    )
    assert odd.status_code == 400
    assert "visibility must be public or private" in odd.text.lower()
    forged = await admin_client.post("/admin/lists", data={**base, "csrf_token": "x", "name": "V"})
    assert forged.status_code == 403
    assert [lst.slug for lst in (await service.lists()).lists] == ["default", "taken"]


async def test_deleting_asks_first_and_refuses_the_default_and_targeted_lists(
    admin_client: httpx.AsyncClient, service: ListService, db: Database
) -> None:
    lst = await service.create(ListDraft.parse(name="Full"))
    await _members(db, lst.id, await add_subscribers(db, 2), "confirmed")
    token = await _csrf(admin_client, f"/admin/lists/{lst.id}")
    asked = await admin_client.post(f"/admin/lists/{lst.id}/delete", data={"csrf_token": token})
    assert asked.status_code == 200
    assert "Delete Full?" in asked.text
    assert 'name="confirm" value="yes"' in asked.text
    assert (await service.get(lst.id)).counts.confirmed == 2
    default = next(x for x in (await service.lists()).lists if x.is_default)
    refused = await admin_client.post(
        f"/admin/lists/{default.id}/delete", data={"csrf_token": token, "confirm": "yes"}
    )
    assert refused.status_code == 303
    page = await admin_client.get(refused.headers["location"])
    assert "The default list cannot be deleted" in page.text
    await _target(db, lst.id, "Autumn")
    refused = await admin_client.post(
        f"/admin/lists/{lst.id}/delete", data={"csrf_token": token, "confirm": "yes"}
    )
    page = await admin_client.get(refused.headers["location"])
    assert "Issues target this list (&#39;Autumn&#39;)" in page.text
    missing = await admin_client.get(f"/admin/lists/{uuid.uuid4()}")
    assert missing.status_code == 404
    assert (await admin_client.get("/admin/lists/not-a-uuid")).status_code in (400, 404)


# --- public page and snippet -------------------------------------------------------------


async def test_the_public_page_shows_a_form_for_the_list(
    client: httpx.AsyncClient, service: ListService
) -> None:
    await service.create(
        ListDraft.parse(
            name="Garden <News>", slug="garden", description="Seeds.\n\nAnd <b>soil</b>."
        )
    )
    await service.create(ListDraft.parse(name="Hidden", slug="hidden", visibility="private"))
    page = await client.get("/l/garden")
    assert page.status_code == 200
    assert "<h1>Garden &lt;News&gt;</h1>" in page.text
    assert "And &lt;b&gt;soil&lt;/b&gt;." in page.text
    assert 'name="list" value="garden"' in page.text
    assert 'name="source" value="l/garden"' in page.text
    assert re.search(r'name="csrf_token" value="[^"]+"', page.text)
    assert 'action="/subscriptions"' in page.text
    assert "noindex" not in page.text
    for slug in ("hidden", "unknown", "%00", "a" * 300):
        assert (await client.get(f"/l/{slug}")).status_code == 404


async def test_the_snippet_posts_from_another_site_without_a_token(
    client: httpx.AsyncClient, service: ListService, db: Database
) -> None:
    lst = await service.create(ListDraft.parse(name="Garden", slug="garden"))
    snippet = service.snippet(lst)
    assert "<script" not in snippet
    assert 'action="http://herald.test/subscriptions"' in snippet
    fields = dict(re.findall(r'<input type="hidden" name="([a-z]+)" value="([^"]*)">', snippet))
    assert fields["list"] == "garden"
    # What a browser sends for the form on https://blog.example: another origin, no cookie,
    # no csrf_token.
    response = await client.post(
        "/subscriptions",
        data={**fields, "name": "Ada", "email": "ada@example.com"},
        headers={
            "Origin": "https://blog.example",
            "Sec-Fetch-Site": "cross-site",
            "Sec-Fetch-Mode": "navigate",
            "Accept": "text/html",
        },
    )
    assert response.status_code == 200, response.text
    assert "Check your inbox" in response.text
    async with db.connection() as conn:
        assert (
            await conn.fetchval("SELECT status FROM subscriptions WHERE email = 'ada@example.com'")
            == "pending_confirmation"
        )


# --- hostile ---------------------------------------------------------------------------


async def test_counts_stay_exact_under_concurrent_changes(
    service: ListService, db: Database
) -> None:
    lst = await service.create(ListDraft.parse(name="Busy"))
    readers = await add_subscribers(db, 40)
    await asyncio.gather(
        *(
            service.add_member(lst.id, reader, MemberStatus(status), "api:ci")
            for reader, status in zip(
                readers, ["confirmed", "pending_confirmation"] * 20, strict=True
            )
        )
    )
    await asyncio.gather(
        *(service.remove_member(lst.id, reader) for reader in readers[:10]),
        *(
            service.add_member(lst.id, r, MemberStatus.CONFIRMED, "api:ci")
            for r in readers[11:30:2]
        ),
    )
    async with db.connection() as conn:
        actual = dict(
            await conn.fetch(
                "SELECT status, count(*) FROM list_memberships WHERE list_id = $1 GROUP BY status",
                lst.id,
            )
        )
    counts = (await service.get(lst.id)).counts
    assert (counts.confirmed, counts.pending, counts.unsubscribed) == (
        actual.get("confirmed", 0),
        actual.get("pending_confirmation", 0),
        actual.get("unsubscribed", 0),
    )
    assert counts.total == 40
    assert counts.unsubscribed == 10


async def test_an_issue_targeting_the_list_after_the_check_is_still_a_conflict(
    service: ListService, db: Database
) -> None:
    from herald.lists import repository

    lst = await service.create(ListDraft.parse(name="Raced"))
    await _target(db, lst.id)
    async with db.transaction() as conn:  # past the service's check: the foreign key refuses
        with pytest.raises(Conflict, match="an issue targets this list"):
            await repository.delete(conn, lst.id)
        assert await repository.by_id(conn, lst.id) is not None


async def test_hostile_form_posts(admin_client: httpx.AsyncClient, service: ListService) -> None:
    token = await _csrf(admin_client, "/admin/lists/new")
    base = {"csrf_token": token, "visibility": "public", "opt_in": "double"}
    too_big = await admin_client.post(
        "/admin/lists", data={**base, "name": "A", "description": "d" * 70_000}
    )
    assert too_big.status_code == 413
    many = await admin_client.post(
        "/admin/lists",
        content="&".join(f"f{n}=x" for n in range(500)),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert many.status_code == 400
    nul = await admin_client.post("/admin/lists", data={**base, "name": "A\x00B"})
    assert nul.status_code == 400
    emoji = {**base, "name": "🌱" * 100}
    no_slug = await admin_client.post("/admin/lists", data=emoji)
    assert no_slug.status_code == 400
    assert "its name has none to suggest" in no_slug.text
    made = await admin_client.post("/admin/lists", data={**emoji, "slug": "sprouts"})
    assert made.status_code == 303
    assert [lst.name for lst in (await service.lists()).lists if not lst.is_default] == ["🌱" * 100]


async def test_an_unknown_list_is_a_page_of_the_admin_leading_back(
    admin_client: httpx.AsyncClient,
) -> None:
    missing = await admin_client.get(
        f"/admin/lists/{uuid.uuid4()}", headers={"Accept": "text/html"}
    )
    assert missing.status_code == 404
    assert 'href="/admin/lists"' in missing.text
    assert "all lists" in missing.text


async def test_the_list_page_shows_its_members_by_status_in_pages(
    admin_client: httpx.AsyncClient, service: ListService, db: Database
) -> None:
    lst = await service.create(ListDraft.parse(name="Paged"))
    readers = await add_subscribers(db, 60)
    await _members(db, lst.id, readers[:55], "confirmed")
    await _members(db, lst.id, readers[55:], "pending_confirmation")
    first = await admin_client.get(f"/admin/lists/{lst.id}")
    assert first.status_code == 200
    shown = re.findall(r'href="/admin/subscribers/([0-9a-f-]{36})"', first.text)
    assert shown == sorted(str(r) for r in readers)[:50]
    after = re.search(r'rel="next" href="[^"]*after=([0-9a-f-]{36})', first.text)
    assert after
    assert after.group(1) == shown[-1]
    second = await admin_client.get(f"/admin/lists/{lst.id}?after={after.group(1)}")
    rest = re.findall(r'href="/admin/subscribers/([0-9a-f-]{36})"', second.text)
    assert rest == sorted(str(r) for r in readers)[50:]
    assert 'rel="next"' not in second.text
    pending = await admin_client.get(f"/admin/lists/{lst.id}?status=pending_confirmation")
    assert len(re.findall(r'href="/admin/subscribers/', pending.text)) == 5
    for bad in ("status=gone", "after=nope"):
        refused = await admin_client.get(f"/admin/lists/{lst.id}?{bad}")
        assert refused.status_code == 400


async def test_the_public_page_and_the_snippet_sign_up_to_their_list(
    client: httpx.AsyncClient, service: ListService, db: Database
) -> None:
    garden = await service.create(ListDraft.parse(name="Garden", slug="garden"))
    page = await client.get("/l/garden")
    fields = dict(re.findall(r'<input type="hidden" name="([a-z_]+)" value="([^"]*)">', page.text))
    assert set(fields) == {"csrf_token", "list", "source"}
    sent = await client.post(
        "/subscriptions", data={**fields, "name": "Ada", "email": "ada@example.com"}
    )
    assert sent.status_code == 200, sent.text
    snippet = service.snippet(garden)
    embedded = dict(re.findall(r'<input type="hidden" name="([a-z]+)" value="([^"]*)">', snippet))
    sent = await client.post(
        "/subscriptions",
        data={**embedded, "name": "Bo", "email": "bo@example.com"},
        headers={"Origin": "https://blog.example", "Sec-Fetch-Site": "cross-site"},
    )
    assert sent.status_code == 200, sent.text
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT s.email, l.slug, m.status, m.source FROM list_memberships m"
            " JOIN lists l ON l.id = m.list_id JOIN subscriptions s ON s.id = m.subscriber_id"
            " ORDER BY s.email, l.slug"
        )
    assert [tuple(r) for r in rows] == [
        ("ada@example.com", "garden", "pending_confirmation", "form:l/garden"),
        ("bo@example.com", "garden", "pending_confirmation", "form"),
    ]
    counts = (await service.get(garden.id)).counts
    assert (counts.pending, counts.confirmed) == (2, 0)


async def test_adding_to_a_list_deleted_meanwhile_is_not_found(
    service: ListService, db: Database
) -> None:
    from herald.lists import repository

    lst = await service.create(ListDraft.parse(name="Gone soon"))
    (reader,) = await add_subscribers(db, 1)
    await service.delete(lst.id, confirmed=True)
    async with db.transaction() as conn:  # past the service's look-up: the foreign key refuses
        with pytest.raises(NotFound, match="no such list"):
            await repository.add_member(conn, lst.id, reader, MemberStatus.CONFIRMED, "api:ci")


async def test_past_a_thousand_lists_the_page_says_it_shows_the_first(
    admin_client: httpx.AsyncClient, service: ListService, db: Database
) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO lists (slug, name) SELECT 'l-' || n, 'List ' || lpad(n::text, 4, '0')"
            " FROM generate_series(1, $1::int) AS n",
            SHOWN_LISTS,
        )
    index = await service.lists()
    assert index.more
    assert len(index.lists) == SHOWN_LISTS
    assert index.lists[0].is_default
    assert index.lists[-1].name == f"List {SHOWN_LISTS - 1:04d}"
    page = await admin_client.get("/admin/lists")
    assert page.status_code == 200
    assert len(re.findall(r'<td class="name"><a href="/admin/lists/', page.text)) == SHOWN_LISTS
    assert "The first 1,000 lists by name are shown here" in page.text
    await service.delete(index.lists[1].id, confirmed=True)
    assert not (await service.lists()).more
    assert "are shown here" not in (await admin_client.get("/admin/lists")).text
