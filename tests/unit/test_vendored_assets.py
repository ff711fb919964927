"""The vendored Swagger UI is the upstream files, unchanged, with their licence."""

from __future__ import annotations

import hashlib
from pathlib import Path

import herald.web

VENDORED = Path(herald.web.__file__).parent / "static" / "swagger-ui"


def test_the_vendored_files_match_their_recorded_checksums() -> None:
    lines = (VENDORED / "SHA256SUMS").read_text().splitlines()
    recorded = dict(reversed(line.split("  ", 1)) for line in lines)
    assert set(recorded) == {
        "swagger-ui-bundle.js",
        "swagger-ui-bundle.js.LICENSE.txt",
        "swagger-ui.css",
        "LICENSE",
        "NOTICE",
    }
    for name, digest in recorded.items():
        assert hashlib.sha256((VENDORED / name).read_bytes()).hexdigest() == digest, name


def test_the_licence_and_version_are_stated() -> None:
    assert "Apache License" in (VENDORED / "LICENSE").read_text()
    readme = (VENDORED / "README.md").read_text()
    assert "| Version | 5.35.0 |" in readme
    assert "sha512-" in readme
