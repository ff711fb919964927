"""/admin/segments: the builder works by plain form posts (add and remove rows, preview,
save), refuses bad rows with a 400 naming the condition, edits nested filters as JSON,
and a segment an issue targets cannot be deleted."""

from __future__ import annotations

import json
import re
import uuid

import httpx

from herald.core.db import Database
from tests.support.newsletters import CSRF

LIST = "/admin/segments"


async def _csrf(client: httpx.AsyncClient, url: str = f"{LIST}/new") -> str:
    page = await client.get(url)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found
    return found.group(1)


async def _seed(db: Database) -> None:
    async with db.connection() as conn:
        for n, (city, status) in enumerate(
            [("Paris", "confirmed"), ("Paris", "pending_confirmation"), ("Lyon", "confirmed")]
        ):
            await conn.execute(
                "INSERT INTO subscriptions (id, email, name, status, attributes)"
                " VALUES ($1, $2, 'R', $3, $4::jsonb)",
                uuid.uuid4(),
                f"r{n}@example.com",
                status,
                json.dumps({"city": city, "age": 20 + n}),
            )


def _rows(html: str) -> list[str]:
    return re.findall(r'name="field_\d+" value="([a-z_]+)"', html)


async def test_build_preview_save_and_reopen(admin_client: httpx.AsyncClient, db: Database) -> None:
    await _seed(db)
    token = await _csrf(admin_client)
    form = {
        "csrf_token": token,
        "name": "Parisians",
        "match": "all",
        "field_0": "status",
        "op_0": "is",
        "value_0": "confirmed",
    }
    added = await admin_client.post(
        f"{LIST}/new", data={**form, "action": "add", "new_field": "attribute"}
    )
    assert added.status_code == 200
    assert _rows(added.text) == ["status", "attribute"]
    form |= {
        "field_1": "attribute",
        "key_1": "city",
        "op_1": "eq",
        "type_1": "string",
        "value_1": "Paris",
    }
    preview = await admin_client.post(f"{LIST}/new", data={**form, "action": "preview"})
    assert preview.status_code == 200
    assert "Matches 1 subscriber<" in preview.text
    assert "r0@example.com" in preview.text
    anyof = await admin_client.post(
        f"{LIST}/new", data={**form, "match": "any", "action": "preview"}
    )
    assert "Matches 3 subscribers" in anyof.text
    removed = await admin_client.post(f"{LIST}/new", data={**form, "action": "remove:0"})
    assert _rows(removed.text) == ["attribute"]
    assert 'value="Paris"' in removed.text

    saved = await admin_client.post(f"{LIST}/new", data={**form, "action": "save"})
    assert saved.status_code == 303
    url = saved.headers["location"]
    page = await admin_client.get(url)
    assert "The segment has been saved." in page.text
    assert "Matches 1 subscriber<" in page.text
    assert _rows(page.text) == ["status", "attribute"]
    listing = await admin_client.get(LIST)
    assert "Parisians" in listing.text

    again = await admin_client.post(f"{LIST}/new", data={**form, "action": "save"})
    assert again.status_code == 400
    assert "already exists" in again.text
    assert 'value="Paris"' in again.text  # what was typed is kept


async def test_bad_rows_are_a_400_naming_the_condition(admin_client: httpx.AsyncClient) -> None:
    token = await _csrf(admin_client)
    base = {
        "csrf_token": token,
        "name": "N",
        "field_0": "status",
        "op_0": "is",
        "value_0": "confirmed",
        "field_1": "attribute",
        "key_1": "age",
        "type_1": "number",
        "op_1": "gt",
    }
    for value, message in (
        ("ten", "Condition 2: &#39;ten&#39; is not a number"),
        ("", "Condition 2: &#39;&#39; is not a number"),
    ):
        response = await admin_client.post(
            f"{LIST}/new", data={**base, "value_1": value, "action": "save"}
        )
        assert response.status_code == 400
        assert message in response.text
    bad_op = await admin_client.post(
        f"{LIST}/new", data={**base, "op_1": "contains", "value_1": "1", "action": "preview"}
    )
    assert bad_op.status_code == 400
    assert "Condition 2: contains does not apply to a number" in bad_op.text
    bad_key = await admin_client.post(
        f"{LIST}/new", data={**base, "key_1": "a b", "value_1": "1", "action": "preview"}
    )
    assert "Condition 2" in bad_key.text
    assert "attribute name" in bad_key.text
    no_rows = await admin_client.post(
        f"{LIST}/new", data={"csrf_token": token, "name": "N", "action": "save"}
    )
    assert no_rows.status_code == 400
    assert "Add at least one condition" in no_rows.text
    forged = await admin_client.post(f"{LIST}/new", data={**base, "csrf_token": "x"})
    assert forged.status_code == 403
    # A removal of no row that int() cannot read (a superscript digit, 5,000 digits) is
    # not a 500: the builder is shown again with its rows.
    for action in ("remove:\u00b2", "remove:" + "9" * 5000, "remove:1\u0663"):
        odd = await admin_client.post(
            f"{LIST}/new", data={**base, "value_1": "1", "action": action}
        )
        assert odd.status_code == 200, (action[:20], odd.text[:200])
        assert 'name="field_1"' in odd.text


async def test_nested_filters_are_edited_as_json(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    await _seed(db)
    token = await _csrf(admin_client)
    nested = {
        "any": [
            {
                "all": [
                    {"status": ["confirmed"]},
                    {"attribute": "age", "op": "gte", "type": "number", "value": 22},
                ]
            },
            {"attribute": "city", "op": "eq", "value": "Lyon"},
        ]
    }
    response = await admin_client.post(
        f"{LIST}/new",
        data={
            "csrf_token": token,
            "name": "Nested",
            "json_text": json.dumps(nested),
            "action": "json",
        },
    )
    assert response.status_code == 200
    assert 'name="mode" value="json"' in response.text
    assert "Matches 1 subscriber<" in response.text
    flat = await admin_client.post(
        f"{LIST}/new",
        data={
            "csrf_token": token,
            "name": "Flat",
            "json_text": '{"email_domain": "example.com"}',
            "action": "json",
        },
    )
    assert _rows(flat.text) == ["email_domain"]
    deep = '{"not":' * 10_000 + '{"status": ["confirmed"]}' + "}" * 10_000
    refused = await admin_client.post(
        f"{LIST}/new",
        data={
            "csrf_token": token,
            "name": "Deep",
            "json_text": deep,
            "mode": "json",
            "action": "save",
        },
    )
    assert refused.status_code in (400, 413)
    saved = await admin_client.post(
        f"{LIST}/new",
        data={
            "csrf_token": token,
            "name": "Nested",
            "json_text": json.dumps(nested),
            "mode": "json",
            "action": "save",
        },
    )
    assert saved.status_code == 303
    page = await admin_client.get(saved.headers["location"])
    assert 'name="mode" value="json"' in page.text


async def test_a_segment_an_issue_targets_cannot_be_deleted(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    token = await _csrf(admin_client)
    saved = await admin_client.post(
        f"{LIST}/new",
        data={
            "csrf_token": token,
            "name": "Used",
            "field_0": "email_domain",
            "op_0": "is",
            "value_0": "example.com",
            "action": "save",
        },
    )
    url = saved.headers["location"]
    segment_id = uuid.UUID(url.rsplit("/", 1)[1])
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO newsletter_issues (id, title, text_content, html_content, status,"
            " segment_id) VALUES ($1, 'T', 't', '<p>t</p>', 'draft', $2)",
            uuid.uuid4(),
            segment_id,
        )
    refused = await admin_client.post(f"{url}/delete", data={"csrf_token": token})
    assert refused.status_code == 303
    shown = await admin_client.get(refused.headers["location"])
    assert "cannot be deleted" in shown.text
    async with db.connection() as conn:
        await conn.execute("DELETE FROM newsletter_issues WHERE segment_id = $1", segment_id)
    deleted = await admin_client.post(f"{url}/delete", data={"csrf_token": token})
    assert deleted.headers["location"] == LIST
    assert (await admin_client.get(url)).status_code == 404


async def test_the_subscriber_page_shows_and_edits_attributes(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    await _seed(db)
    async with db.connection() as conn:
        sid = await conn.fetchval("SELECT id FROM subscriptions WHERE email = 'r0@example.com'")
    url = f"/admin/subscribers/{sid}"
    token = await _csrf(admin_client, url)
    page = await admin_client.get(url)
    assert "&#34;city&#34;: &#34;Paris&#34;" in page.text
    saved = await admin_client.post(
        f"{url}/attributes",
        data={"csrf_token": token, "attributes": '{"city": "Lyon", "tags": ["a"]}'},
    )
    assert saved.headers["location"] == url
    async with db.connection() as conn:
        stored = await conn.fetchval(
            "SELECT attributes::text FROM subscriptions WHERE id = $1", sid
        )
    assert json.loads(stored) == {"city": "Lyon", "tags": ["a"]}
    for bad, message in (
        ("[1]", "must be a JSON object"),
        ('{"a b": 1}', "not an attribute name"),
        ("{", "not valid JSON"),
        ('{"a": ' * 10_000 + "1" + "}" * 10_000, "nested"),
    ):
        refused = await admin_client.post(
            f"{url}/attributes", data={"csrf_token": token, "attributes": bad}
        )
        assert refused.status_code in (303, 413), refused.text
        if refused.status_code == 303:
            shown = await admin_client.get(refused.headers["location"])
            assert message in shown.text, shown.text
    cleared = await admin_client.post(
        f"{url}/attributes", data={"csrf_token": token, "attributes": ""}
    )
    assert cleared.status_code == 303
    async with db.connection() as conn:
        assert (
            await conn.fetchval("SELECT attributes FROM subscriptions WHERE id = $1", sid) == "{}"
        )


async def test_a_segments_subscribers_page_by_page(
    admin_client: httpx.AsyncClient, db: Database
) -> None:
    async with db.connection() as conn:
        await conn.executemany(
            "INSERT INTO subscriptions (id, email, name, status, created_at, attributes)"
            " VALUES ($1, $2, 'R', 'confirmed', now() - make_interval(mins => $3), $4::jsonb)",
            [
                (uuid.uuid4(), f"p{n}@example.com", n, json.dumps({"city": "Paris"}))
                for n in range(60)
            ]
            + [(uuid.uuid4(), "lyon@example.com", 0, json.dumps({"city": "Lyon"}))],
        )
    token = await _csrf(admin_client)
    saved = await admin_client.post(
        f"{LIST}/new",
        data={
            "csrf_token": token,
            "name": "Paris",
            "field_0": "attribute",
            "key_0": "city",
            "op_0": "eq",
            "type_0": "string",
            "value_0": "Paris",
            "action": "save",
        },
    )
    url = saved.headers["location"]
    assert "Every subscriber of this segment" in (await admin_client.get(url)).text
    first = await admin_client.get(f"{url}/subscribers")
    assert first.status_code == 200
    assert "city equals Paris" in first.text
    assert first.text.count('href="/admin/subscribers/') == 50
    assert "p0@example.com" in first.text
    assert "lyon@example.com" not in first.text
    older = re.search(r'href="([^"]+/subscribers\?after=[^"]+)"', first.text)
    assert older
    second = await admin_client.get(older.group(1).replace("&amp;", "&"))
    assert second.text.count('href="/admin/subscribers/') == 10
    assert "p59@example.com" in second.text
    assert "Older subscribers &rarr;" not in second.text
    bad = await admin_client.get(f"{url}/subscribers", params={"after": "garbage"})
    assert bad.status_code == 400
