"""Ship some packages of the container image's virtualenv as bytecode only (the Dockerfile's
``deps`` stage).

    python3 sourceless.py LIST VENV

For each package named in LIST (one per line; ``#`` starts a comment) under VENV's
site-packages: every ``.py`` is compiled to a ``.pyc`` beside it (the layout Python imports
when the source is missing; ``__pycache__`` is only read next to a source), unchecked-hash
like the rest of the image, and the ``.py`` deleted; a ``.py`` shadowed by an extension
module of the same name (SQLAlchemy's ``*_cy`` modules: the extension is always imported
first) is deleted without compiling. Then each package's smoke test in LIST (after the
name, as a Python statement) runs, so a package that needs its sources fails the build,
not a container later.

The sources are read only by tracebacks (which then show no source lines for those
packages' frames) and by ``inspect.getsource``; a package is listed only after checking it
never calls that (``grep -rn "getsource\\|findsource\\|linecache.getline"``; anyio does,
for its lazy imports, so it keeps its sources).
"""

# ruff: noqa: S603, T201 (a build step: it runs the venv's python and reports to the build log)
from __future__ import annotations

import compileall
import importlib.machinery
import py_compile
import subprocess
import sys
from pathlib import Path


def site_packages(venv: Path) -> Path:
    [found] = venv.glob("lib/python3*/site-packages")
    return found


def entries(listing: Path) -> list[tuple[str, str]]:
    """``(package, smoke statement)`` per non-comment line."""
    found = []
    for line in listing.read_text(encoding="utf-8").splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            package, _, smoke = text.partition(" ")
            found.append((package, smoke.strip()))
    return found


def make_sourceless(package: Path) -> tuple[int, int]:
    """Compile beside, delete the sources and ``__pycache__``; (files, bytes removed)."""
    removed = size = 0
    extensions = tuple(importlib.machinery.EXTENSION_SUFFIXES)
    for cache in sorted(package.rglob("__pycache__"), reverse=True):
        for compiled in cache.iterdir():
            compiled.unlink()
        cache.rmdir()
    for source in sorted(package.rglob("*.py")):
        shadowed = any(source.with_name(source.stem + suffix).exists() for suffix in extensions)
        if not shadowed:
            ok = compileall.compile_file(
                source,
                quiet=2,
                legacy=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
            if not ok:
                raise SystemExit(f"cannot compile {source}")
        size += source.stat().st_size
        source.unlink()
        removed += 1
    return removed, size


def main() -> None:
    listing, venv = Path(sys.argv[1]), Path(sys.argv[2])
    root = site_packages(venv)
    for name, smoke in entries(listing):
        package = root / name
        if not package.is_dir():
            raise SystemExit(f"{name} is not a package of {root}")
        files, size = make_sourceless(package)
        print(f"{name}: {files} sources removed, {size / 1e6:.1f} MB")
        if smoke:
            subprocess.run([str(venv / "bin" / "python"), "-c", smoke], check=True)


if __name__ == "__main__":
    main()
