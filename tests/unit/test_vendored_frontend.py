"""The vendored front-end libraries (htmx, uPlot) are the registry's files, unchanged, with
their licences, at exact pins (``make assets`` re-vendors them; see tools/vendor_assets.py)."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

import herald.web

VENDOR = Path(herald.web.__file__).parent / "static" / "vendor"
MANIFEST: dict[str, Any] = json.loads((VENDOR / "vendor.json").read_text())
PACKAGES = MANIFEST["packages"]
ROOT = Path(__file__).resolve().parents[2]
LICENCE_WORDS = {"MIT": "Permission is hereby granted", "0BSD": "Zero-Clause BSD"}


def test_htmx_and_uplot_are_vendored() -> None:
    assert {pin["package"] for pin in PACKAGES} == {"htmx.org", "uplot"}


@pytest.mark.parametrize("pin", PACKAGES, ids=lambda pin: pin["package"])
def test_each_file_matches_its_recorded_checksum(pin: dict[str, Any]) -> None:
    folder = VENDOR / pin["dir"]
    names = set(pin["files"].values())
    assert set(pin["sha256"]) == names
    assert {p.name for p in folder.iterdir()} == names, "a file that vendor.json does not list"
    for name, digest in pin["sha256"].items():
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest, name


@pytest.mark.parametrize("pin", PACKAGES, ids=lambda pin: pin["package"])
def test_each_pin_is_exact_with_the_registry_integrity_and_a_licence(pin: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+\.\d+\.\d+", pin["version"]), "pin an exact version"
    integrity = pin["integrity"]
    assert integrity.startswith("sha512-")
    assert len(base64.b64decode(integrity.removeprefix("sha512-"), validate=True)) == 64
    licence = VENDOR / pin["dir"] / pin["license_file"]
    assert pin["license_file"] in pin["files"].values()
    assert LICENCE_WORDS[pin["license"]] in licence.read_text()


def test_make_test_never_re_vendors() -> None:
    makefile = (ROOT / "Makefile").read_text()
    test_rule = re.search(r"^test:(.*?)(?=^\S)", makefile, re.M | re.S)
    assert test_rule
    assert "assets" not in test_rule.group(0)
    assert "vendor_assets" not in test_rule.group(0)
    assert re.search(r"^assets:\n\t\$\(PYTHON\) tools/vendor_assets\.py$", makefile, re.M)
