"""Rules about the shape of the code base, checked by reading the source with ``ast``."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

import herald

SRC = Path(herald.__file__).resolve().parent.parent
PACKAGE = SRC / "herald"
MIGRATION_VERSIONS = PACKAGE / "migrations" / "versions"

DOMAIN_MODULES = (
    "herald.archive.domain",
    "herald.auth.domain",
    "herald.deliverability.domain",
    "herald.deliverability.dns_records",
    "herald.deliverability.dsn",
    "herald.deliverability.policy",
    "herald.deliverability.postmark",
    "herald.deliverability.ses",
    "herald.deliverability.smtp_status",
    "herald.delivery.domain",
    "herald.design.domain",
    "herald.design.logos",
    "herald.email.message",
    "herald.email.verp",
    "herald.engagement.domain",
    "herald.engagement.links",
    "herald.imports.domain",
    "herald.issues.domain",
    "herald.jobs.domain",
    "herald.lists.domain",
    "herald.segments.domain",
    "herald.subscriptions.domain",
    "herald.subscriptions.signup",
    "herald.suppressions.domain",
    "herald.webhooks.domain",
    "herald.welcomes.domain",
)
FRAMEWORKS = ("fastapi", "starlette", "asyncpg", "sqlalchemy")
MAX_LINES = 400
SQL_KEYWORDS = ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM")
# The segment compiler writes the SQL of a filter (every user value a parameter).
SQL_ALLOWED = ("herald.core.db", "herald.migrations", "herald.segments.compiler")


@dataclass(frozen=True)
class Import:
    module: str  # absolute dotted name
    line: int
    runtime: bool  # False under ``if TYPE_CHECKING:``
    module_level: bool  # False inside a function: runs only when that function is called


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


@cache
def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


@cache
def tree(name: str) -> ast.Module:
    path = modules()[name]
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk(node: ast.AST, runtime: bool, module_level: bool) -> Iterator[tuple[ast.AST, bool, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            for part in child.body:
                yield part, False, module_level
                yield from _walk(part, False, module_level)
            for part in child.orelse:
                yield part, runtime, module_level
                yield from _walk(part, runtime, module_level)
            continue
        inner = module_level and not isinstance(
            child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
        )
        yield child, runtime, inner
        yield from _walk(child, runtime, inner)


def read_imports(name: str, module: ast.Module, *, is_package: bool) -> list[Import]:
    """Every import in a module, resolved to absolute names (``from p import m`` → ``p.m``)."""
    found: list[Import] = []
    for node, runtime, module_level in _walk(module, runtime=True, module_level=True):
        if isinstance(node, ast.Import):
            found += [
                Import(alias.name, node.lineno, runtime, module_level) for alias in node.names
            ]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                target = candidate if candidate in modules() else base
                found.append(Import(target, node.lineno, runtime, module_level))
    return found


def imports(name: str) -> list[Import]:
    return read_imports(name, tree(name), is_package=modules()[name].name == "__init__.py")


def import_time_dependencies(name: str) -> set[str]:
    """The herald modules a module imports while it is being imported."""
    return {
        imp.module
        for imp in imports(name)
        if imp.module in modules() and imp.runtime and imp.module_level and imp.module != name
    }


def test_the_import_reader_tells_runtime_module_level_imports_apart() -> None:
    source = """
from typing import TYPE_CHECKING
import fastapi
from . import domain
from ..core import errors as e
if TYPE_CHECKING:
    import asyncpg
else:
    import json
def later():
    import sqlalchemy
"""
    found = read_imports("herald.subscriptions.x", ast.parse(source), is_package=False)
    assert {(i.module, i.runtime, i.module_level) for i in found} == {
        ("typing", True, True),
        ("fastapi", True, True),
        ("herald.subscriptions.domain", True, True),
        ("herald.core.errors", True, True),
        ("asyncpg", False, True),
        ("json", True, True),
        ("sqlalchemy", True, False),
    }


# -- (a) the domain is framework-free ------------------------------------------


def framework_imports(start: str) -> list[str]:
    """Framework imports reachable from ``start`` through herald modules (and their packages)."""
    seen: dict[str, str] = {start: start}  # module → how it was reached
    pending = [start]
    offending: list[str] = []
    while pending:
        current = pending.pop()
        parents = [".".join(current.split(".")[:n]) for n in range(1, current.count(".") + 1)]
        reached = [imp.module for imp in imports(current) if imp.runtime] + parents
        for target in reached:
            if target.split(".")[0] in FRAMEWORKS:
                offending.append(f"{seen[current]} imports {target}")
            elif target in modules() and target not in seen:
                seen[target] = f"{seen[current]} → {target}"
                pending.append(target)
    return offending


def test_framework_imports_are_found_through_herald_modules() -> None:
    """Guard against a vacuous rule: the middleware reaches fastapi through herald.web.errors."""
    found = framework_imports("herald.web.middleware")
    assert "herald.web.middleware → herald.web.errors imports fastapi" in found


def test_every_domain_module_is_checked() -> None:
    domains = {name for name in modules() if name.rsplit(".", 1)[-1] == "domain"}
    assert domains, "no domain modules found"
    missing = domains - set(DOMAIN_MODULES)
    assert not missing, f"add to DOMAIN_MODULES: {sorted(missing)}"


@pytest.mark.parametrize("domain", DOMAIN_MODULES)
def test_domain_modules_do_not_depend_on_web_or_database_frameworks(domain: str) -> None:
    offending = framework_imports(domain)
    assert not offending, "\n".join(offending)


# -- (b) small modules -------------------------------------------------------


def test_every_module_is_short() -> None:
    too_long = {
        name: count
        for name, path in modules().items()
        if (count := len(path.read_text(encoding="utf-8").splitlines())) >= MAX_LINES
    }
    assert not too_long, f"modules of {MAX_LINES} lines or more: {too_long}"


# -- (c) migrations do not wait forever for locks ----------------------------


def _migration_files() -> list[Path]:
    return sorted(p for p in MIGRATION_VERSIONS.glob("*.py") if p.name != "__init__.py")


def test_there_are_migrations_to_check() -> None:
    assert _migration_files()


@pytest.mark.parametrize("path", _migration_files(), ids=lambda p: p.name)
def test_every_migration_sets_a_lock_timeout_both_ways(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    functions = {
        node.name: ast.get_source_segment(source, node) or ""
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef)
    }
    for direction in ("upgrade", "downgrade"):
        assert direction in functions, f"{path.name} has no {direction}()"
        body = functions[direction]
        # create_indexes_concurrently sets it itself (herald/migrations/__init__.py).
        sets_it = ("LOCK_TIMEOUT", "lock_timeout", "create_indexes_concurrently(")
        assert any(marker in body for marker in sets_it), (
            f"{path.name}: {direction}() does not set lock_timeout"
        )


def test_the_concurrent_index_helper_sets_a_lock_timeout() -> None:
    source = (MIGRATION_VERSIONS.parent / "__init__.py").read_text(encoding="utf-8")
    helper = source[source.index("def create_indexes_concurrently(") :]
    assert "SET lock_timeout" in helper.split("\ndef ", 1)[0]


# -- (d) no import cycles ----------------------------------------------------


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle (as a path that returns to its start) in a directed graph, if there is any."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(node: str) -> list[str] | None:
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in on_stack:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in done and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        on_stack.discard(node)
        done.add(node)
        return None

    for start in sorted(graph):
        if start not in done and (cycle := visit(start)):
            return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_herald_modules_import_each_other_without_cycles() -> None:
    graph = {name: import_time_dependencies(name) for name in modules()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " → ".join(cycle or [])


# -- (e) SQL lives in .sql files ---------------------------------------------


def _docstrings(module: ast.Module) -> set[int]:
    """The ids of the docstring nodes of the module, its classes and its functions."""
    owners: list[ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef] = [module]
    owners += [
        node
        for node in ast.walk(module)
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    return {
        id(first.value)
        for owner in owners
        if owner.body
        and isinstance(first := owner.body[0], ast.Expr)
        and isinstance(first.value, ast.Constant)
    }


def sql_in_strings(name: str, module: ast.Module | None = None) -> list[str]:
    module = module or tree(name)
    skip = _docstrings(module)
    return [
        f"{name}:{node.lineno}: {node.value.strip()[:60]!r}"
        for node in ast.walk(module)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in skip
        and any(keyword in node.value for keyword in SQL_KEYWORDS)
    ]


def test_the_sql_scan_finds_sql_strings_but_not_docstrings() -> None:
    source = '''
"""Claims rows with SELECT ... FOR UPDATE SKIP LOCKED."""
def claim():
    """UPDATE deliveries in one statement."""
    return f"DELETE FROM {table}" + "INSERT INTO t VALUES (1)"
LABEL = "UPDATEs are fenced"
'''
    hits = sql_in_strings("example", ast.parse(source))
    assert [hit.split(":")[1] for hit in hits] == ["5", "5"]


def test_no_sql_in_python_strings_outside_the_allowed_modules() -> None:
    found = [
        hit
        for name in modules()
        if not any(name == ok or name.startswith(ok + ".") for ok in SQL_ALLOWED)
        for hit in sql_in_strings(name)
    ]
    assert not found, "SQL belongs in .sql files:\n" + "\n".join(found)
