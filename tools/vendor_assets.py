"""Re-vendor Herald's front-end libraries from the npm registry (``make assets``).

The pins live in ``src/herald/web/static/vendor/vendor.json``: for each package its exact
version and the files taken from its tarball (always including its licence). For each pin
this script asks the registry for ``dist.integrity``, downloads the tarball with
``npm pack``, refuses it unless its SHA-512 equals that integrity, and copies the listed
files, unchanged, into ``vendor/<dir>/``. It then records the integrity and each file's
SHA-256 in ``vendor.json``; ``tests/unit/test_vendored_assets.py`` checks those offline.

Needs ``npm`` and the registry: run it by hand to move a pin, never from the tests (CI has
no network). Usage: ``python tools/vendor_assets.py`` (``--dry-run`` checks the registry
and the tarballs without writing anything).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
VENDOR = ROOT / "src" / "herald" / "web" / "static" / "vendor"
MANIFEST = VENDOR / "vendor.json"
NPM = shutil.which("npm") or "npm"


def say(text: str) -> None:
    sys.stdout.write(text + "\n")


def npm(*args: str) -> str:
    done = subprocess.run(  # noqa: S603 - npm with our own arguments
        [NPM, *args], check=True, capture_output=True, text=True, timeout=300
    )
    return done.stdout


def sri_sha512(data: bytes) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()


def fetch(pin: dict[str, Any], workdir: Path) -> tuple[str, Path]:
    """The registry's integrity of ``package@version`` and the tarball, checked against it."""
    spec = f"{pin['package']}@{pin['version']}"
    integrity = json.loads(npm("view", spec, "dist.integrity", "--json"))
    if not isinstance(integrity, str) or not integrity.startswith("sha512-"):
        raise SystemExit(f"{spec}: the registry gave no sha512 integrity ({integrity!r})")
    packed = json.loads(npm("pack", spec, "--json", "--pack-destination", str(workdir)))
    tarball = workdir / packed[0]["filename"]
    actual = sri_sha512(tarball.read_bytes())
    if actual != integrity:
        raise SystemExit(f"{spec}: tarball {actual} does not match the registry's {integrity}")
    return integrity, tarball


def extract(pin: dict[str, Any], tarball: Path, target: Path) -> dict[str, str]:
    """Copy the pin's files out of the tarball into ``target``; their SHA-256 by name."""
    sums: dict[str, str] = {}
    with tarfile.open(tarball, "r:gz") as archive:
        for source, name in pin["files"].items():
            member = archive.getmember(f"package/{source}")
            stream = archive.extractfile(member)
            if stream is None:
                raise SystemExit(f"{pin['package']}: {source} is not a file")
            data = stream.read()
            (target / name).write_bytes(data)
            sums[name] = hashlib.sha256(data).hexdigest()
    return sums


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true", help="check, write nothing")
    args = parser.parse_args()
    manifest = json.loads(MANIFEST.read_text())
    with tempfile.TemporaryDirectory(prefix="herald-assets-") as tmp:
        for pin in manifest["packages"]:
            integrity, tarball = fetch(pin, Path(tmp))
            staging = Path(tmp) / pin["dir"]
            staging.mkdir()
            sums = extract(pin, tarball, staging)
            say(f"{pin['package']}@{pin['version']}: {integrity} (matches the registry)")
            if args.dry_run:
                continue
            target = VENDOR / pin["dir"]
            if target.exists():
                shutil.rmtree(target)
            shutil.copytree(staging, target)
            pin["integrity"] = integrity
            pin["sha256"] = sums
    if not args.dry_run:
        MANIFEST.write_text(json.dumps(manifest, indent=2) + "\n")
        say(f"wrote {MANIFEST.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
