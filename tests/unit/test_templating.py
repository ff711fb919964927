"""Every template folder the Jinja loader needs must ship with the code (a fresh clone has it)."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import pytest

from herald.core.templating import TEMPLATE_PACKAGES, environment

ROOT = Path(__file__).resolve().parents[2]


def _templates_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    assert spec is not None
    assert spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "templates"


@pytest.mark.parametrize("package", TEMPLATE_PACKAGES)
def test_each_template_package_holds_files_under_version_control(package: str) -> None:
    folder = _templates_dir(package)
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "--", str(folder)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert tracked, f"{folder} has no tracked templates: a fresh clone would lack it"


def test_the_environment_lists_every_template() -> None:
    names = environment().list_templates()
    assert "layout.html" in names
    assert "email/confirmation.txt" in names
