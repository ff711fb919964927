"""Named SQL queries: ``-- name: x`` blocks in ``.sql`` files, parsed strictly."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from herald.core import sql
from herald.core.sql import all_query_files, load, parse

PACKAGE_ROOT = Path(sql.__file__).resolve().parent.parent


def test_named_blocks_become_statements() -> None:
    queries = parse(
        """
-- name: ping
SELECT 1

-- name: find_user
SELECT id, name
FROM users
WHERE id = $1
"""
    )
    assert dict(queries) == {
        "ping": "SELECT 1",
        "find_user": "SELECT id, name\nFROM users\nWHERE id = $1",
    }
    assert len(queries) == 2
    assert list(queries) == ["ping", "find_user"]


def test_comment_lines_are_dropped_and_inline_sql_is_kept() -> None:
    queries = parse(
        """-- A file-level comment before the first marker is fine.

-- name: count_active
-- Counts subscribers who confirmed.
SELECT count(*)
    -- indented comments go too
FROM subscriptions
WHERE status = 'confirmed'  -- an inline comment stays part of the line
"""
    )
    assert queries["count_active"] == (
        "SELECT count(*)\nFROM subscriptions\n"
        "WHERE status = 'confirmed'  -- an inline comment stays part of the line"
    )


def test_trailing_semicolons_are_dropped() -> None:
    queries = parse("-- name: one\nSELECT 1;\n\n-- name: two\nSELECT 2;;\n")
    assert queries["one"] == "SELECT 1"
    assert queries["two"] == "SELECT 2"


def test_markers_tolerate_spacing() -> None:
    assert parse("--name:tight\nSELECT 1\n--   name:   loose   \nSELECT 2")["loose"] == "SELECT 2"


def test_a_name_defined_twice_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"queries\.sql: query 'ping' is defined twice"):
        parse("-- name: ping\nSELECT 1\n-- name: ping\nSELECT 2\n", source="queries.sql")


@pytest.mark.parametrize(
    "body", ["", "\n\n", "-- only a comment\n", ";\n", "-- name: next\nSELECT 1"]
)
def test_an_empty_query_is_rejected(body: str) -> None:
    with pytest.raises(ValueError, match="query 'empty' is empty"):
        parse(f"-- name: empty\n{body}")


def test_sql_before_the_first_marker_is_rejected() -> None:
    with pytest.raises(ValueError, match=r"a\.sql: SQL before the first '-- name:' marker"):
        parse("SELECT 0;\n-- name: ping\nSELECT 1\n", source="a.sql")


def test_a_file_without_markers_is_rejected_unless_it_is_only_comments() -> None:
    with pytest.raises(ValueError, match="before the first"):
        parse("SELECT 1")
    assert len(parse("-- nothing here yet\n\n")) == 0


def test_asking_for_an_unknown_query_names_it_and_the_file() -> None:
    queries = parse("-- name: ping\nSELECT 1", source="herald.core/queries.sql")
    with pytest.raises(KeyError, match=r"no query named 'pong' in herald\.core/queries\.sql"):
        queries["pong"]
    assert "pong" not in queries
    assert queries.get("pong") is None


def test_load_reads_the_file_shipped_in_a_package() -> None:
    queries = load("herald.core")
    assert queries.source == "herald.core/queries.sql"
    assert queries["ping"] == "SELECT 1"


def test_all_query_files_lists_the_feature_files_and_no_migrations() -> None:
    found = all_query_files()
    relative = {path.resolve().relative_to(PACKAGE_ROOT).as_posix() for path in found}
    assert {
        "core/queries.sql",
        "subscriptions/queries.sql",
        "delivery/queries.sql",
    } <= relative
    assert not any(part.startswith("migrations/") for part in relative)
    assert found == sorted(found)


def test_all_query_files_skips_migrations_but_not_a_checkout_path_named_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Only ``migrations`` inside the package counts: a checkout at ~/migrations/… must work."""
    root = tmp_path / "migrations" / "herald"
    (root / "core").mkdir(parents=True)
    (root / "core" / "queries.sql").write_text("-- name: ping\nSELECT 1\n")
    (root / "migrations").mkdir()
    (root / "migrations" / "seed.sql").write_text("INSERT INTO t VALUES (1);\n")
    monkeypatch.setattr(sql, "resources", SimpleNamespace(files=lambda _package: root))
    assert all_query_files() == [root / "core" / "queries.sql"]


@pytest.mark.parametrize(
    "path", all_query_files(), ids=lambda p: p.resolve().relative_to(PACKAGE_ROOT).as_posix()
)
def test_every_shipped_query_file_parses(path: Path) -> None:
    queries = parse(path.read_text(encoding="utf-8"), source=str(path))
    assert len(queries) >= 1
    assert all(statement.strip() for statement in queries.values())
