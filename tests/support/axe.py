"""axe-core for the browser tests: a pinned version from the npm registry, never committed.

``axe_source()`` returns the text of ``axe.min.js`` from ``axe-core@AXE_VERSION``. The
tarball is fetched once with ``npm pack`` into a cache under ``.pytest_cache`` and, on
every use, refused unless its SHA-512 equals both the integrity pinned here and the one the
registry gives (``dist.integrity``) when it is first fetched — the check
``tools/vendor_assets.py`` makes for the vendored front-end libraries.

The browser tests inject the text with ``page.evaluate``: it runs through the DevTools
protocol, so the page's nonce CSP, which refuses any script without the nonce, does not
apply to it (the pages are tested under their real policy; no ``bypass_csp``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

AXE_VERSION = "4.10.3"
AXE_INTEGRITY = (
    "sha512-Xm7bpRXnDSX2YE2YFfBk2FnF0ep6tmG7xPh8iHee8MIc"
    "rgq762Nkce856dYtJYLkuIoYZvGfTs/PbZhideTcEg=="
)
ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".pytest_cache" / "herald-axe"
NPM = shutil.which("npm") or "/usr/bin/npm"


class AxeUnavailable(RuntimeError):
    """npm or the registry could not give the pinned axe-core."""


def sri_sha512(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def npm(*args: str) -> str:
    try:
        done = subprocess.run([NPM, *args], check=True, capture_output=True, text=True, timeout=180)
    except (OSError, subprocess.SubprocessError) as exc:
        detail = getattr(exc, "stderr", "") or exc
        raise AxeUnavailable(f"npm {' '.join(args)}: {detail}") from exc
    return done.stdout


def fetch(cache: Path) -> Path:
    """The pinned tarball, downloaded with ``npm pack`` unless already in ``cache``."""
    spec = f"axe-core@{AXE_VERSION}"
    tarball = cache / f"axe-core-{AXE_VERSION}.tgz"
    if tarball.exists():
        return tarball
    registry = json.loads(npm("view", spec, "dist.integrity", "--json"))
    if registry != AXE_INTEGRITY:
        raise AxeUnavailable(f"{spec}: the registry says {registry!r}, pinned {AXE_INTEGRITY}")
    cache.mkdir(parents=True, exist_ok=True)
    packed = json.loads(npm("pack", spec, "--json", "--pack-destination", str(cache)))
    return cache / packed[0]["filename"]


def axe_source(cache: Path = CACHE) -> str:
    """The text of the pinned ``axe.min.js``, its tarball checked against the integrity."""
    tarball = fetch(cache)
    actual = sri_sha512(tarball.read_bytes())
    if actual != AXE_INTEGRITY:
        tarball.unlink()
        raise AxeUnavailable(f"{tarball.name}: {actual} is not the pinned {AXE_INTEGRITY}")
    with tarfile.open(tarball, "r:gz") as archive:
        stream = archive.extractfile("package/axe.min.js")
        if stream is None:
            raise AxeUnavailable(f"{tarball.name} has no axe.min.js")
        return stream.read().decode()


def serious(results: dict[str, Any]) -> list[str]:
    """One line per serious or critical violation of an ``axe.run()`` result, with its nodes."""
    lines = []
    for violation in results["violations"]:
        if violation.get("impact") not in {"serious", "critical"}:
            continue
        targets = [" ".join(map(str, node["target"])) for node in violation["nodes"]]
        lines.append(
            f"{violation['impact']} {violation['id']}: {violation['help']} -> {targets[:5]}"
        )
    return lines
