"""Which directories the embedded Postgres may use: its cluster's, and its socket folder."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from herald.core.errors import EmbeddedPostgresError
from herald.core.pg_binaries import HERALD_INCLUDE, MARKER, claim_cluster_dir, private_dir

UID, GID = os.geteuid(), os.getegid()


def test_a_missing_socket_folder_is_created_private(tmp_path: Path) -> None:
    folder = tmp_path / "herald-pg-x"
    private_dir(folder, UID, GID)
    info = folder.lstat()
    assert stat.S_ISDIR(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o700
    assert info.st_uid == UID


def test_a_private_socket_folder_of_the_right_owner_is_reused(tmp_path: Path) -> None:
    folder = tmp_path / "herald-pg-x"
    folder.mkdir(mode=0o700)
    (folder / "kept").write_text("")
    private_dir(folder, UID, GID)
    assert (folder / "kept").exists()


@pytest.mark.parametrize("problem", ["open to others", "someone else's", "a symlink", "a file"])
def test_a_socket_folder_that_is_not_private_is_refused_and_left_alone(
    tmp_path: Path, problem: str
) -> None:
    folder = tmp_path / "herald-pg-x"
    uid = UID
    if problem == "open to others":
        folder.mkdir()
        folder.chmod(0o777)
    elif problem == "someone else's":
        folder.mkdir(mode=0o700)
        uid = UID + 1
    elif problem == "a symlink":
        (tmp_path / "target").mkdir(mode=0o700)
        folder.symlink_to(tmp_path / "target")
    else:
        folder.write_text("")
    before = folder.lstat()
    with pytest.raises(EmbeddedPostgresError, match="refusing") as caught:
        private_dir(folder, uid, GID)
    assert str(folder) in caught.value.message
    after = folder.lstat()
    assert (after.st_mode, after.st_uid) == (before.st_mode, before.st_uid)


def cluster(pgdata: Path, *, conf: str) -> None:
    pgdata.mkdir()
    (pgdata / "PG_VERSION").write_text("16\n")
    (pgdata / "postgresql.conf").write_text(conf)


@pytest.mark.parametrize("state", ["absent", "empty", "earlier herald", "marked"])
def test_herald_claims_new_directories_its_own_and_earlier_heralds_clusters(
    tmp_path: Path, state: str
) -> None:
    pgdata, marker = tmp_path / "postgres", tmp_path / MARKER
    if state == "empty":
        pgdata.mkdir()
    elif state == "earlier herald":
        cluster(pgdata, conf=f"port = 5432\n\n# Herald's settings\n{HERALD_INCLUDE}\n")
    elif state == "marked":
        marker.write_text("Herald's\n")
        pgdata.mkdir()
        (pgdata / "half-made-by-initdb").write_text("")
    claim_cluster_dir(pgdata, marker)
    assert marker.is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize(
    ("state", "why"),
    [
        ("foreign cluster", "did not create"),
        ("herald.conf mentioned in a comment only", "did not create"),
        ("someone's files", "not a Herald cluster"),
        ("a file", "not a Herald cluster"),
    ],
)
def test_anything_else_is_refused_untouched_and_unmarked(
    tmp_path: Path, state: str, why: str
) -> None:
    pgdata, marker = tmp_path / "postgres", tmp_path / MARKER
    if state == "foreign cluster":
        cluster(pgdata, conf="port = 5432\n")
    elif state.startswith("herald.conf"):
        cluster(pgdata, conf=f"# {HERALD_INCLUDE}\n")
    elif state == "someone's files":
        pgdata.mkdir()
        (pgdata / "notes.txt").write_text("mine")
    else:
        pgdata.write_text("mine")
    with pytest.raises(EmbeddedPostgresError, match=why) as caught:
        claim_cluster_dir(pgdata, marker)
    assert str(pgdata) in caught.value.message
    assert not marker.exists()
