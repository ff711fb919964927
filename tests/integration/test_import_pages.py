"""Imports and exports over HTTP: the JSON API (multipart upload with Idempotency-Key,
status, error report pages and CSV, the streamed export) and the admin's pages (upload,
mapping, the job page, the error report, the subscriber page's export)."""

from __future__ import annotations

import csv
import io
import json
import re

import httpx
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.imports.job import ImportJob
from herald.jobs.runner import JobRunner
from tests.support.api import api_client, make_keys, new_app
from tests.support.newsletters import CSRF

CSV = (
    b"email,name,city\n"
    b"ann@example.com,Ann,Paris\n"
    b"not-an-address,X,y\n"
    b"bob@example.com,Bob,Oslo\n"
    b"also bad,Y,z\n"
)


async def run_jobs(db: Database, settings: Settings) -> None:
    runner = JobRunner(db, {"subscribers.import": ImportJob(settings)}, lease_seconds=30)
    while await runner.run_one():
        pass


async def test_the_api_uploads_follows_and_reports(db: Database, settings: Settings) -> None:
    keys = await make_keys(db, settings)
    async with api_client(new_app(settings, db)) as api:
        files = {"file": ("people.csv", CSV, "text/csv")}
        data = {"list": "default", "mode": "confirmed"}
        headers = {**keys.admin_write, "Idempotency-Key": "import-1"}
        created = await api.post("/api/v1/imports", files=files, data=data, headers=headers)
        assert created.status_code == 202, created.text
        body = created.json()
        assert body["state"] == "queued"
        assert body["lists"] == ["default"]
        location = created.headers["location"]
        assert location == f"/api/v1/imports/{body['id']}"
        again = await api.post("/api/v1/imports", files=files, data=data, headers=headers)
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json()["id"] == body["id"]
        other = await api.post(
            "/api/v1/imports",
            files={"file": ("other.csv", b"email\nx@example.com\n", "text/csv")},
            data=data,
            headers=headers,
        )
        assert other.status_code == 422
        await run_jobs(db, settings)
        status = (await api.get(location, headers=keys.admin_read)).json()
        assert status["state"] == "done"
        assert status["counts"] == {"imported": 2, "updated": 0, "skipped": 0, "rejected": 2}
        first = await api.get(f"{location}/errors?limit=1", headers=keys.admin_read)
        assert first.json()["items"] == [
            {"line": 3, "email": "not-an-address", "error": first.json()["items"][0]["error"]}
        ]
        cursor = first.json()["next_cursor"]
        second = await api.get(
            f"{location}/errors", params={"limit": 1, "cursor": cursor}, headers=keys.admin_read
        )
        assert [e["line"] for e in second.json()["items"]] == [5]
        assert second.json()["next_cursor"] is None
        report = await api.get(f"{location}/errors?format=csv", headers=keys.admin_read)
        assert report.headers["content-type"].startswith("text/csv")
        assert [r[0] for r in csv.reader(io.StringIO(report.text))] == ["line", "3", "5"]
        exported = await api.get(
            "/api/v1/exports/subscribers?format=json&list=default", headers=keys.admin_read
        )
        assert exported.headers["content-type"] == "application/x-ndjson"
        lines = [json.loads(line) for line in exported.text.splitlines()]
        assert {(x["email"], x["attributes"]["city"]) for x in lines} == {
            ("ann@example.com", "Paris"),
            ("bob@example.com", "Oslo"),
        }
        async with db.connection() as conn:
            segment = await conn.fetchval(
                "INSERT INTO segments (name, filter) VALUES ('Parisians', $1::jsonb) RETURNING id",
                json.dumps({"attribute": "city", "op": "eq", "type": "string", "value": "Paris"}),
            )
        for listed in ("", "&list=default"):
            narrowed = await api.get(
                f"/api/v1/exports/subscribers?segment={segment}{listed}", headers=keys.admin_read
            )
            assert [r[0] for r in csv.reader(io.StringIO(narrowed.text))] == [
                "email",
                "ann@example.com",
            ]


async def test_a_keyed_upload_over_the_in_memory_spool_is_stored_whole_and_replayed(
    db: Database, settings: Settings
) -> None:
    """An ``Idempotency-Key`` upload is hashed as it streams and spooled (past 1 MiB to a
    temporary file) before the form parser reads it back: 3 MiB arrive byte for byte, a
    retry with another multipart boundary replays, another file is a 422."""
    body = b"email,name\n" + b"".join(b"reader%06d@example.com,R\n" % i for i in range(120_000))
    assert len(body) > 3 * 1024 * 1024
    keys = await make_keys(db, settings)
    async with api_client(new_app(settings, db)) as api:
        files = {"file": ("big.csv", body, "text/csv")}
        headers = {**keys.admin_write, "Idempotency-Key": "big-1"}
        created = await api.post("/api/v1/imports", files=files, headers=headers)
        assert created.status_code == 202, created.text
        assert created.json()["size"] == len(body)
        again = await api.post("/api/v1/imports", files=files, headers=headers)
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json()["id"] == created.json()["id"]
        changed = {"file": ("big.csv", body[:-2] + b"S\n", "text/csv")}
        other = await api.post("/api/v1/imports", files=changed, headers=headers)
        assert other.status_code == 422
    async with db.connection() as conn:
        stored = await conn.fetchval(
            "SELECT string_agg(data, ''::bytea ORDER BY seq) FROM job_files WHERE job_id = $1",
            created.json()["id"],
        )
        imports = await conn.fetchval("SELECT count(*) FROM imports")
    assert stored == body
    assert imports == 1


@pytest.mark.parametrize(
    ("data", "files", "problem"),
    [
        ({"list": "nope"}, {"file": ("a.csv", b"email\na@example.com\n")}, "nope"),
        ({}, {"file": ("a.csv", b"name\nAnn\n")}, "no email column"),
        ({"mode": "maybe"}, {"file": ("a.csv", b"email\n")}, "mode"),
        ({"columns": "[1]"}, {"file": ("a.csv", b"email\n")}, "columns"),
        ({}, {"file": ("a.csv", b"")}, "no header row"),
        ({"list": "no\x00pe"}, {"file": ("a.csv", b"email\n")}, "no list"),
        ({}, {"file": ("a\x00.csv", b"email,x\x00y\n")}, "NUL"),
    ],
)
async def test_the_api_refuses_bad_imports_naming_the_problem(
    db: Database,
    settings: Settings,
    data: dict[str, str],
    files: dict[str, tuple[str, bytes]],
    problem: str,
) -> None:
    keys = await make_keys(db, settings)
    async with api_client(new_app(settings, db)) as api:
        refused = await api.post(
            "/api/v1/imports", files=files, data=data, headers=keys.admin_write
        )
        assert refused.status_code in (400, 404), refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert problem in refused.text
        missing = await api.get(
            "/api/v1/imports/00000000-0000-0000-0000-000000000000", headers=keys.admin_read
        )
        assert missing.status_code == 404
        for slug in ("nope", "no%00pe", "x" * 61):
            unknown = await api.get(
                f"/api/v1/exports/subscribers?list={slug}", headers=keys.admin_read
            )
            assert unknown.status_code in (400, 404), unknown.text


async def test_the_admin_uploads_maps_and_follows_an_import(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    page = await admin_client.get("/admin/subscribers/import")
    assert page.status_code == 200
    token = CSRF.search(page.text)
    assert token is not None
    upload = await admin_client.post(
        "/admin/subscribers/import",
        data={"csrf_token": token.group(1)},
        files={"file": ("people.csv", CSV, "text/csv")},
    )
    assert upload.status_code == 303
    here = upload.headers["location"]
    mapping = await admin_client.get(here)
    assert 'name="role_0"' in mapping.text
    assert re.search(r'<option value="email" selected>', mapping.text)
    fields = {
        "csrf_token": token.group(1),
        "role_0": "email",
        "role_1": "name",
        "role_2": "attribute",
        "list": "default",
        "mode": "confirmed",
    }
    refused = await admin_client.post(f"{here}/start", data=fields)
    assert refused.status_code == 303
    assert "agreed to receive" in (await admin_client.get(here)).text
    started = await admin_client.post(f"{here}/start", data={**fields, "attest": "yes"})
    assert started.status_code == 303
    done = await admin_client.get(here)
    assert "2 imported" in done.text
    assert "errors.csv" in done.text
    report = await admin_client.get(f"{here}/errors.csv")
    assert "not-an-address" in report.text
    listing = await admin_client.get("/admin/subscribers/import")
    assert "people.csv" in listing.text
    exported = await admin_client.get("/admin/subscribers/export?status=confirmed&q=ann")
    rows = list(csv.reader(io.StringIO(exported.text)))
    assert [r[0] for r in rows] == ["email", "ann@example.com"]


async def test_the_upload_refuses_without_the_csrf_token(admin_client: httpx.AsyncClient) -> None:
    refused = await admin_client.post(
        "/admin/subscribers/import", files={"file": ("a.csv", b"email\n", "text/csv")}
    )
    assert refused.status_code == 403


async def test_uploads_are_not_held_to_the_64_kib_body_limit(
    admin_client: httpx.AsyncClient, db: Database, settings: Settings
) -> None:
    """A 3 MB file (past the 64 KiB default and the 2 MiB issue forms) is taken, stored in
    job_files as chunks of 1 MiB, and its rows counted from its line ends."""
    rows = b"".join(b"reader%d@example.org,Reader %d\n" % (i, i) for i in range(100_000))
    data = b"email,name\n" + rows
    assert len(data) > 3 * 1024 * 1024
    page = await admin_client.get("/admin/subscribers/import")
    token = CSRF.search(page.text)
    assert token is not None
    upload = await admin_client.post(
        "/admin/subscribers/import",
        data={"csrf_token": token.group(1)},
        files={"file": ("big.csv", data, "text/csv")},
    )
    assert upload.status_code == 303, upload.text
    async with db.connection() as conn:
        found = await conn.fetchrow(
            "SELECT i.size, i.chunks, j.total FROM imports AS i JOIN jobs AS j ON j.id = i.job_id"
        )
        sizes = await conn.fetch("SELECT length(data) AS n FROM job_files ORDER BY seq")
    assert (found["size"], found["chunks"], found["total"]) == (len(data), 4, 100_000)
    assert [r["n"] for r in sizes][:3] == [1024 * 1024] * 3


async def test_a_nul_in_the_subscribers_search_is_a_400_not_a_500(
    admin_client: httpx.AsyncClient,
) -> None:
    """The filter the subscribers page and its export share refuses what Postgres cannot
    take as text."""
    assert (await admin_client.get("/admin/subscribers?q=a%00b")).status_code == 400
    assert (await admin_client.get("/admin/subscribers/export?q=a%00b")).status_code == 303
