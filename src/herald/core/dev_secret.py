"""The development secret key: generated once into the data dir, shared by every process.

Production requires ``HERALD_SECRET_KEY``; development needs no set-up, so the first
start writes a random key (mode 0600) that later starts, and concurrent first starts,
all read.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path

from pydantic import SecretStr

from herald.core.errors import ConfigurationError


def development_secret_key(data_dir: Path) -> SecretStr:
    """Generate the development secret once and keep it in the data dir (mode 0600).

    The key is written whole to a temporary file, flushed, and then hard-linked into
    place, which fails if the name exists: a reader never sees a partial or empty key,
    and of several first starts racing, the first link wins and everyone reads its key.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "secret_key"
    if not path.exists():
        _publish_new_key(path)
    key = path.read_text().strip()
    if not key:
        raise ConfigurationError(
            f"the development secret key file {path} is empty; delete it to have a new key "
            f"generated (sessions will be signed out) or set HERALD_SECRET_KEY"
        )
    return SecretStr(key)


def _publish_new_key(path: Path) -> None:
    key = secrets.token_urlsafe(48)
    fd, name = tempfile.mkstemp(prefix=".secret_key.", dir=path.parent)  # mode 0600
    temporary = Path(name)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(key + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return  # another process was first: its key is the key
        except OSError:
            # A filesystem without hard links: rename is still atomic for readers, but
            # two starts racing here might each keep their own key for this run.
            if path.exists():
                return
            temporary.replace(path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        temporary.unlink(missing_ok=True)
