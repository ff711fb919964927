"""The package graph: docs/ARCHITECTURE.md's "Depends on" column is checked against the code.

Every import one package makes of another counts — at module level or inside a function
(a function called while its module is imported runs its imports at import time too, and
any other runs them later in the same process) — except those under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from functools import cache

import pytest

from tests.unit.test_architecture import SRC, find_cycle, imports, modules

ARCHITECTURE = SRC.parent / "docs" / "ARCHITECTURE.md"
COMPOSITION = "composition"
EVERYTHING = "everything"
ROOT_MODULES = {"herald": "__init__", "herald.__main__": "__main__"}


def package_of(module: str) -> str:
    """``herald.issues.service`` → ``issues``; the root modules are their own packages."""
    if module in ROOT_MODULES:
        return ROOT_MODULES[module]
    return module.split(".")[1]


@cache
def documented() -> dict[str, set[str]]:
    """Package → what its "Depends on" cell allows (packages or ``package.module``)."""
    rows: dict[str, set[str]] = {}
    for line in ARCHITECTURE.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = [re.sub(r"(/|\.py)$", "", name) for name in re.findall(r"`([^`]+)`", cells[0])]
        depends = cells[2]
        allowed = (
            set()
            if depends == "nothing in Herald"
            else {EVERYTHING}
            if depends == EVERYTHING
            else {part.strip() for part in depends.split(",")}
        )
        for name in names:
            rows[name] = allowed
    return rows


@cache
def actual() -> dict[str, dict[str, set[str]]]:
    """Package → imported herald module → the importing modules (for messages)."""
    found: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
    for name in modules():
        for imp in imports(name):
            if imp.runtime and imp.module in modules() and imp.module != "herald":
                source, target = package_of(name), package_of(imp.module)
                if source != target:
                    found[source][imp.module].add(name)
    return found


def allows(allowed: set[str], module: str) -> bool:
    if EVERYTHING in allowed:
        return True
    dotted = module.removeprefix("herald.")
    return package_of(module) in allowed or any(
        dotted == entry or dotted.startswith(entry + ".") for entry in allowed
    )


def test_the_table_is_read() -> None:
    rows = documented()
    assert rows["core"] == set()
    assert rows[COMPOSITION] == {EVERYTHING}
    assert "email.message" in rows["delivery"]


def test_every_package_has_a_row_and_every_row_a_package() -> None:
    packages = {package_of(name) for name in modules()}
    assert packages == set(documented())


@pytest.mark.parametrize("package", sorted({package_of(name) for name in modules()}))
def test_a_package_imports_only_what_its_row_lists(package: str) -> None:
    allowed = documented().get(package, set())
    undeclared = [
        f"{', '.join(sorted(importers))} imports {target}"
        for target, importers in sorted(actual()[package].items())
        if not allows(allowed, target)
    ]
    assert not undeclared, f"{package}/ depends on more than ARCHITECTURE.md says:\n" + "\n".join(
        undeclared
    )
    unused = [
        entry
        for entry in sorted(allowed - {EVERYTHING})
        if not any(allows({entry}, target) for target in actual()[package])
    ]
    assert not unused, f"ARCHITECTURE.md lists dependencies {package}/ does not have: {unused}"


def test_only_the_composition_root_imports_it() -> None:
    importers = sorted(
        package
        for package, targets in actual().items()
        if any(package_of(target) == COMPOSITION for target in targets)
    )
    assert importers == ["__main__"]


def test_the_package_graph_has_no_cycle() -> None:
    graph = {
        package: {package_of(target) for target in targets} for package, targets in actual().items()
    }
    cycle = find_cycle(graph)
    assert cycle is None, "package cycle: " + " → ".join(cycle or [])


def test_a_function_level_import_counts() -> None:
    """The cycle that once hid here: cli.py registered auth/cli.py from a function it
    called at import time, and auth/cli.py imported cli.py inside its functions."""
    lazy = [i for i in imports("herald.composition.worker") if i.module == "herald.delivery.worker"]
    assert lazy
    assert not lazy[0].module_level
    assert "herald.delivery.worker" in actual()[COMPOSITION]
