"""Temporary directories outside pytest's tmp_path, removed when the session ends.

pytest's ``tmp_path`` lives under a 0700 directory the unprivileged Postgres user
cannot enter, so the embedded-Postgres tests make their own.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

_CREATED: list[Path] = []


def public_tmpdir(prefix: str) -> Path:
    """A temp dir the unprivileged Postgres user can reach."""
    path = private_tmpdir(prefix)
    path.chmod(0o755)
    return path


def private_tmpdir(prefix: str) -> Path:
    """A temp dir only its owner can enter (mode 0700)."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    _CREATED.append(path)
    return path


def remove_all() -> None:
    while _CREATED:
        shutil.rmtree(_CREATED.pop(), ignore_errors=True)
