"""Named queries and the code that runs them agree, read statically with ``ast``.

Every ``Q["name"]`` names a statement that exists in the file ``Q`` was loaded from, every
statement in a query file is used somewhere, and every query file is one the code loads
(so tests/integration/test_sql_statements.py, which prepares every file that
``sql.all_query_files()`` finds, prepares exactly the statements Herald runs).
"""

from __future__ import annotations

import ast
from collections import defaultdict
from functools import cache
from pathlib import Path

from herald.core import sql
from tests.unit.test_architecture import PACKAGE, modules, tree


def _loaded_file(call: ast.expr) -> Path | None:
    """The file of a ``sql.load("herald.x"[, "file.sql"])`` call, else None."""
    if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute | ast.Name)):
        return None
    func = call.func.attr if isinstance(call.func, ast.Attribute) else call.func.id
    if func != "load" or not call.args:
        return None
    args = [a.value for a in call.args if isinstance(a, ast.Constant)]
    if len(args) != len(call.args) or not str(args[0]).startswith("herald"):
        return None
    package = str(args[0]).split(".")[1:]
    filename = str(args[1]) if len(args) > 1 else "queries.sql"
    return PACKAGE.joinpath(*package, filename)


@cache
def usage() -> tuple[dict[Path, set[str]], list[str]]:
    """Query file → names used in code; and every subscript that is not a literal name."""
    used: dict[Path, set[str]] = defaultdict(set)
    dynamic: list[str] = []
    for name in modules():
        module = tree(name)
        variables: dict[str, Path] = {}
        for node in module.body:
            if isinstance(node, ast.Assign) and len(node.targets) == 1:
                target = node.targets[0]
                if isinstance(target, ast.Name) and (path := _loaded_file(node.value)):
                    variables[target.id] = path
                    used.setdefault(path, set())
        for node in ast.walk(module):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and node.value.id in variables
            ):
                path = variables[node.value.id]
                if isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str):
                    used[path].add(node.slice.value)
                else:
                    dynamic.append(f"{name}:{node.lineno}")
    return dict(used), dynamic


def defined(path: Path) -> set[str]:
    return set(sql.parse(path.read_text(encoding="utf-8"), source=str(path)))


def test_the_reader_finds_the_loads() -> None:
    used, _ = usage()
    assert PACKAGE / "delivery" / "queries.sql" in used
    assert "claim" in used[PACKAGE / "delivery" / "queries.sql"]


def test_queries_are_named_by_literals() -> None:
    _, dynamic = usage()
    assert not dynamic, f"a query name that is not a string literal cannot be checked: {dynamic}"


def test_every_query_the_code_names_exists() -> None:
    used, _ = usage()
    missing = {
        f"{path.relative_to(PACKAGE)}: {sorted(names - defined(path))}"
        for path, names in used.items()
        if names - defined(path)
    }
    assert not missing, missing


def test_every_named_query_is_used() -> None:
    used, _ = usage()
    unused = {
        f"{path.relative_to(PACKAGE)}: {sorted(defined(path) - names)}"
        for path, names in used.items()
        if defined(path) - names
    }
    assert not unused, f"named queries nothing runs: {unused}"


def test_the_prepare_everything_test_sees_exactly_the_loaded_files() -> None:
    used, _ = usage()
    assert set(sql.all_query_files()) == set(used)
