"""Named SQL queries kept in ``.sql`` files next to the feature that owns them.

A file holds blocks introduced by ``-- name: some_query``; everything up to the
next marker is the statement. Files are read once at import. Keeping SQL in
files (not strings in Python) lets one test prepare every statement against the
migrated schema, the way sqlx checks queries at compile time.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path

_MARKER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_MARKER_LIKE = re.compile(r"^--\s*name\s*:.*$", re.MULTILINE)


class Queries(Mapping[str, str]):
    """An immutable name → statement mapping loaded from one ``.sql`` file."""

    def __init__(self, source: str, statements: dict[str, str]) -> None:
        self.source = source
        self._statements = statements

    def __getitem__(self, name: str) -> str:
        try:
            return self._statements[name]
        except KeyError:
            raise KeyError(f"no query named {name!r} in {self.source}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._statements)

    def __len__(self) -> int:
        return len(self._statements)


def parse(text: str, source: str = "<string>") -> Queries:
    statements: dict[str, str] = {}
    matches = list(_MARKER.finditer(text))
    if len(matches) != len(_MARKER_LIKE.findall(text)):
        bad = [m.group(0) for m in _MARKER_LIKE.finditer(text) if not _MARKER.fullmatch(m.group(0))]
        raise ValueError(f"{source}: malformed query marker(s) {bad}: use '-- name: snake_case'")
    preamble = text[: matches[0].start()] if matches else text
    if _strip_comments(preamble).strip():
        raise ValueError(f"{source}: SQL before the first '-- name:' marker")
    for index, match in enumerate(matches):
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        body = _strip_comments(text[match.end() : end]).strip().rstrip(";").strip()
        name = match.group(1)
        if not body:
            raise ValueError(f"{source}: query {name!r} is empty")
        if name in statements:
            raise ValueError(f"{source}: query {name!r} is defined twice")
        statements[name] = body
    return Queries(source, statements)


def _strip_comments(body: str) -> str:
    return "\n".join(line for line in body.splitlines() if not line.lstrip().startswith("--"))


def load(package: str, filename: str = "queries.sql") -> Queries:
    """Load ``filename`` shipped inside ``package``."""
    resource = resources.files(package).joinpath(filename)
    return parse(resource.read_text(encoding="utf-8"), source=f"{package}/{filename}")


def all_query_files() -> list[Path]:
    """Every named-query file in the Herald package (used by the prepare-everything test)."""
    root = Path(str(resources.files("herald")))
    return sorted(p for p in root.rglob("*.sql") if "migrations" not in p.relative_to(root).parts)
