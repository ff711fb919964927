"""The embedded Postgres: start, share, adopt orphans, never run as root."""

from __future__ import annotations

import asyncio
import os
import pwd
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from herald.core import embedded_pg, pg_binaries
from herald.core.embedded_pg import EmbeddedPostgres
from herald.core.errors import EmbeddedPostgresError
from tests.support.tmp import private_tmpdir, public_tmpdir


def postmaster_pid(server: EmbeddedPostgres) -> int:
    return int((server.pgdata / "postmaster.pid").read_text().split("\n", 1)[0])


async def answers(dsn: str) -> bool:
    conn = await asyncpg.connect(dsn, timeout=5)
    try:
        return bool(await conn.fetchval("SELECT 1"))
    finally:
        await conn.close()


@pytest.fixture
def data_dir() -> Path:
    return public_tmpdir("herald-embedded-test-")


async def test_start_serves_a_database_and_stop_stops_it(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir, database="postgres")
    dsn = server.start()
    try:
        assert await answers(dsn)
        assert server.is_running()
    finally:
        assert server.stop() is True
    assert not server.is_running()


async def test_the_server_is_stopped_by_its_last_user_only(data_dir: Path) -> None:
    first = EmbeddedPostgres(data_dir, database="postgres")
    second = EmbeddedPostgres(data_dir, database="postgres")
    first.start()
    pid = postmaster_pid(first)
    second.start()
    assert postmaster_pid(second) == pid, "the second user adopts the running server"
    assert first.stop() is False
    assert second.is_running()
    assert await answers(second.dsn())
    assert second.stop() is True
    assert not second.is_running()


async def test_an_orphaned_server_is_adopted_then_stopped(data_dir: Path) -> None:
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from herald.core.embedded_pg import EmbeddedPostgres\n"
        "EmbeddedPostgres(Path(sys.argv[1]), database='postgres').start()\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    result = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-c", script, str(data_dir)], check=False, timeout=60
    )
    assert result.returncode == -9
    server = EmbeddedPostgres(data_dir, database="postgres")
    assert server.is_running(), "the killed owner left its server running"
    orphan = postmaster_pid(server)
    server.start()
    assert postmaster_pid(server) == orphan
    assert await answers(server.dsn())
    assert server.stop() is True
    assert not server.is_running()


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when Herald runs as root")
def test_as_root_the_server_runs_as_the_unprivileged_user(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir, database="postgres")
    server.start()
    try:
        status = Path(f"/proc/{postmaster_pid(server)}/status").read_text()
        uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
        assert pwd.getpwuid(uid).pw_name == "postgres"
        assert server.pgdata.stat().st_uid == uid
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when Herald runs as root")
async def test_as_root_an_unreachable_data_dir_moves_the_cluster_to_var_lib_herald(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    private = private_tmpdir("herald-private-")  # 0700, root's
    fallback = public_tmpdir("herald-fallback-")
    monkeypatch.setattr(embedded_pg, "ROOT_FALLBACK_DIR", fallback)
    server = EmbeddedPostgres(private / "data", database="postgres")
    dsn = server.start()
    try:
        assert server.pgdata.is_relative_to(fallback)
        assert (private / "data" / "postgres.location").read_text().strip() == str(server.pgdata)
        assert await answers(dsn)
    finally:
        server.stop()
    again = EmbeddedPostgres(private / "data", database="postgres")
    assert again.pgdata == server.pgdata, "the next start finds the same cluster"


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when Herald runs as root")
def test_as_root_unreachable_binaries_are_copied_where_the_server_user_can_run_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    postgres_user = pwd.getpwnam("postgres")
    private = private_tmpdir("herald-private-")  # 0700, root's
    install = private / "site-packages" / "somepgwheel" / "pginstall99"
    (install / "bin").mkdir(parents=True)
    (install / "lib").mkdir()
    (private / "site-packages" / "somepgwheel.libs").mkdir()
    (private / "site-packages" / "somepgwheel.libs" / "libpq-x.so").write_text("lib")
    binary = install / "bin" / "postgres"
    binary.write_text("#!/bin/sh\necho 'postgres (PostgreSQL) 99.0'\n")
    binary.chmod(0o755)
    assert not pg_binaries.user_can_enter(postgres_user, binary.parent)
    fallback = public_tmpdir("herald-fallback-")
    monkeypatch.setattr(pg_binaries, "ROOT_FALLBACK_DIR", fallback)
    copied = pg_binaries.private_copy(install / "bin")
    assert copied.is_relative_to(fallback)
    assert pg_binaries.user_can_enter(postgres_user, copied)
    result = subprocess.run(
        [str(copied / "postgres")], user="postgres", capture_output=True, text=True, check=True
    )
    assert "99.0" in result.stdout
    # The wheel's RPATH ($ORIGIN/../../../<package>.libs) still resolves in the copy.
    assert (copied / ".." / ".." / ".." / "somepgwheel.libs" / "libpq-x.so").exists()
    assert pg_binaries.private_copy(install / "bin") == copied, "copied once, then reused"


@pytest.mark.skipif(os.geteuid() != 0, reason="only meaningful when Herald runs as root")
def test_as_root_a_missing_run_as_user_is_a_clear_error(data_dir: Path) -> None:
    server = EmbeddedPostgres(data_dir, database="postgres", run_as_user="no-such-user-xyz")
    with pytest.raises(EmbeddedPostgresError, match="does not exist"):
        server.start()


SYSTEM_PG = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))


@pytest.mark.skipif(not SYSTEM_PG, reason="no system Postgres installed here")
async def test_system_binaries_can_serve_instead_of_the_wheel(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bin_dir = SYSTEM_PG[-1].parent
    monkeypatch.setenv("HERALD_PG_BIN_DIR", str(bin_dir))
    server = EmbeddedPostgres(data_dir, database="postgres")
    dsn = server.start()
    try:
        assert server.binaries().bin_dir == bin_dir
        assert await answers(dsn)
    finally:
        server.stop()


# -- what Herald may touch: only clusters it made ------------------------------------


def foreign_cluster(pgdata: Path) -> EmbeddedPostgres:
    """A cluster made and started by someone else (plain initdb, its own settings)."""
    tool = EmbeddedPostgres(pgdata.parent, database="postgres")
    pgdata.mkdir(mode=0o700)
    tool._chown(pgdata)
    binaries = tool.binaries()
    tool._run([binaries.tool("initdb"), "-D", str(pgdata), "-U", "postgres", "--auth=trust"])
    options = f"-c listen_addresses='' -c unix_socket_directories='{pgdata}'"
    log = str(pgdata / "foreign.log")
    tool._run([binaries.tool("pg_ctl"), "start", "-D", str(pgdata), "-l", log, "-w", "-o", options])
    return tool


async def test_a_directory_that_is_not_a_herald_cluster_is_never_wiped(data_dir: Path) -> None:
    (data_dir / "postgres").mkdir()
    precious = data_dir / "postgres" / "precious.txt"
    precious.write_text("not Herald's")
    server = EmbeddedPostgres(data_dir, database="postgres")
    try:
        with pytest.raises(EmbeddedPostgresError, match="not a Herald cluster") as caught:
            server.start()
    finally:
        server.stop()
    assert str(data_dir / "postgres") in caught.value.message
    assert precious.read_text() == "not Herald's"


async def test_a_foreign_cluster_is_neither_adopted_nor_stopped(data_dir: Path) -> None:
    pgdata = data_dir / "postgres"
    foreign = foreign_cluster(pgdata)
    pg_ctl = foreign.binaries().tool("pg_ctl")
    server = EmbeddedPostgres(data_dir, database="postgres")
    try:
        try:
            with pytest.raises(EmbeddedPostgresError, match="did not create") as caught:
                server.start()
        finally:
            server.stop()
        assert str(pgdata) in caught.value.message
        assert foreign._run([pg_ctl, "status", "-D", str(pgdata)], check=False).returncode == 0
        assert not (pgdata / "herald.conf").exists(), "the foreign cluster was changed"
    finally:
        foreign._run([pg_ctl, "stop", "-D", str(pgdata), "-m", "immediate", "-w"], check=False)


async def test_herald_marks_its_cluster_redoes_its_own_broken_initdb_and_keeps_old_clusters(
    data_dir: Path,
) -> None:
    marker = data_dir / embedded_pg.MARKER
    # Herald's own initdb that died half-way: marked, no PG_VERSION yet. Safe to redo.
    marker.write_text("made by Herald\n")
    (data_dir / "postgres" / "global").mkdir(parents=True)
    (data_dir / "postgres" / "global" / "half-written").write_text("")
    server = EmbeddedPostgres(data_dir, database="postgres")
    dsn = server.start()
    try:
        assert not (data_dir / "postgres" / "global" / "half-written").exists()
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("CREATE DATABASE kept")
        finally:
            await conn.close()
    finally:
        server.stop()
    # A cluster made by an earlier Herald has no marker: recognised, kept, marked.
    marker.unlink()
    again = EmbeddedPostgres(data_dir, database="kept")
    dsn = again.start()
    try:
        assert await answers(dsn)
    finally:
        again.stop()
    assert marker.is_file()


async def test_a_socket_folder_in_tmp_that_is_not_private_is_refused(data_dir: Path) -> None:
    deep = data_dir / ("d" * 90)  # too long a path for a socket beside the cluster
    deep.mkdir(mode=0o755)
    server = EmbeddedPostgres(deep, database="postgres")
    socket_dir = server.socket_dir
    assert socket_dir.parent == Path("/tmp")  # noqa: S108 - the path under test
    socket_dir.mkdir(mode=0o700)
    socket_dir.chmod(0o777)  # someone else's, or open to everyone
    try:
        with pytest.raises(EmbeddedPostgresError, match="refusing") as caught:
            server.start()
    finally:
        server.stop()
        socket_dir.rmdir()
    assert str(socket_dir) in caught.value.message
