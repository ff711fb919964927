"""Assemble the container image's root file system (the Dockerfile's ``rootfs`` stage).

    python3 runtime_root.py DEST VENV UID

copies from the running base image into DEST only what Herald's processes use: the Python
interpreter and its standard library (without the test suite, IDLE, tkinter, ensurepip,
distutils, and without pip or any other package of the base's own site-packages), the shared
libraries that the interpreter and the extension modules of VENV link (found with ``ldd``),
CA certificates, time zones and the C.UTF-8 locale, and ``/etc/passwd`` / ``/etc/group``
naming the user UID (``herald``, home ``/var/lib/herald``). There is no shell and no package
manager: the base image's Debian system is about 75 MB, this file system about 45 MB, and the
image's 150 MB budget does not fit both. For the Debian packages whose files are copied, their
``dpkg`` status entries go to ``/var/lib/dpkg/status.d/`` (what vulnerability scanners read
for distroless images) and their copyright files come along.

The standard library is byte-compiled here when the base image shipped it without ``.pyc``
files (the official ``python`` images delete them). The virtualenv itself is not copied: the
Dockerfile adds it as a layer of its own.
"""

# ruff: noqa: PTH110, PTH112, PTH114, PTH115, PTH118, PTH119, PTH120, PTH123, PTH208, PTH211, S603, S607
# (paths stay strings: symlinks are copied as links, and os.path.lexists / realpath say exactly
# which; ldd is the base image's own, found on its PATH.)
from __future__ import annotations

import compileall
import os
import re
import shutil
import stat
import subprocess
import sys
import sysconfig
from pathlib import Path

# Standard-library directories a server never imports.
STDLIB_SKIP_DIRS = {
    "test",
    "tests",
    "idle_test",
    "idlelib",
    "tkinter",
    "turtledemo",
    "lib2to3",
    "pydoc_data",
    "ensurepip",
    "distutils",
    "site-packages",
    "dist-packages",
}
# Extension modules that only drag in libraries (curses, readline, Berkeley DB, NIS/Kerberos)
# or exist for CPython's own tests.
DYNLOAD_SKIP = re.compile(
    r"^(_test|_xxtest|xxlimited|xxsubtype|_ctypes_test|_tkinter|_curses|readline|_dbm|_gdbm|nis)"
)
LDD_LINE = re.compile(r"^\s*(?:(\S+) => )?(\S+|not found)(?: \(0x[0-9a-f]+\))?$")
ETC_FILES = [
    "/etc/nsswitch.conf",
    "/etc/host.conf",
    "/etc/services",
    "/etc/protocols",
    "/etc/ld.so.cache",
    "/etc/os-release",
    "/usr/lib/os-release",
    "/etc/ssl/openssl.cnf",
    "/etc/ssl/certs/ca-certificates.crt",
]
EXTRA_TREES = ["/usr/share/zoneinfo", "/usr/lib/locale/C.utf8", "/usr/lib/ssl"]


class RootFS:
    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self.copied: set[str] = set()

    def target(self, path: str) -> Path:
        return self.dest / path.lstrip("/")

    def add(self, path: str) -> None:
        """Copy ``path`` (file, symlink chain or directory) to the same place under DEST."""
        path = os.path.normpath(path)
        if path in self.copied or not os.path.lexists(path):
            return
        self.copied.add(path)
        parent = os.path.dirname(path)
        if parent != "/":
            self.add(parent)
        real = os.path.join(os.path.realpath(parent), os.path.basename(path))
        if real != path:  # reached through a symlinked directory (merged /usr): copy the real one
            self.add(real)
            return
        info = os.lstat(path)
        target = self.target(path)
        if stat.S_ISLNK(info.st_mode):
            link = os.readlink(path)
            if not os.path.lexists(target):
                os.symlink(link, target)
            self.add(os.path.join(parent, link))
        elif stat.S_ISDIR(info.st_mode):
            target.mkdir(exist_ok=True)
            shutil.copystat(path, target, follow_symlinks=False)
            os.chown(target, info.st_uid, info.st_gid)
        else:
            shutil.copy2(path, target, follow_symlinks=False)
            os.chown(target, info.st_uid, info.st_gid)

    def add_tree(self, root: str, skip_dir: set[str] | None = None) -> None:
        if not os.path.lexists(root):
            return
        self.add(root)
        if os.path.islink(root) or not os.path.isdir(root):
            return
        for current, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if d not in (skip_dir or set())]
            for name in dirs + files:
                self.add(os.path.join(current, name))


def shared_libraries(files: list[str]) -> set[str]:
    """Every library ``files`` load at start, by ``ldd`` (which follows the whole closure)."""
    found: set[str] = set()
    for chunk in range(0, len(files), 200):
        batch = files[chunk : chunk + 200]
        out = subprocess.run(["ldd", *batch], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            match = LDD_LINE.match(line)
            if not match or line.endswith(":") or "statically linked" in line:
                continue
            name, where = match.groups()
            if where == "not found":
                raise SystemExit(f"runtime_root: {name} is not in the base image ({line.strip()})")
            if where.startswith("/"):
                found.add(where)
    return found


def elf_files(root: str) -> list[str]:
    result = []
    for current, _dirs, files in os.walk(root):
        for name in files:
            path = os.path.join(current, name)
            if ".so" in name and not os.path.islink(path):
                with open(path, "rb") as handle:
                    if handle.read(4) == b"\x7fELF":
                        result.append(path)
    return result


def libgcc_s() -> list[str]:
    # glibc dlopens libgcc_s for thread cancellation and unwinding; ldd does not list it.
    arch = sysconfig.get_config_var("MULTIARCH") or ""
    dirs = [f"/usr/lib/{arch}", f"/lib/{arch}", "/usr/lib64", "/lib64", "/usr/lib"]
    return [f"{d}/libgcc_s.so.1" for d in dirs if os.path.exists(f"{d}/libgcc_s.so.1")][:1]


def write_users(dest: Path, uid: int) -> None:
    (dest / "etc").mkdir(exist_ok=True)
    (dest / "etc/passwd").write_text(
        "root:x:0:0:root:/root:/usr/sbin/nologin\n"
        f"herald:x:{uid}:{uid}:Herald:/var/lib/herald:/usr/sbin/nologin\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    )
    (dest / "etc/group").write_text(f"root:x:0:\nherald:x:{uid}:\nnogroup:x:65534:\n")
    for name, mode, owner in [
        ("tmp", 0o1777, 0),
        ("var/tmp", 0o1777, 0),
        ("root", 0o700, 0),
        ("opt", 0o755, 0),
        ("var/lib/herald", 0o750, uid),
    ]:
        path = dest / name
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)
        os.chown(path, owner, owner)


def dpkg_records(dest: Path, copied: set[str]) -> None:
    """status.d entries and copyright files for the Debian packages that own copied files."""
    info = Path("/var/lib/dpkg/info")
    status = Path("/var/lib/dpkg/status")
    if not info.is_dir() or not status.exists():
        return
    real_copied = {os.path.realpath(p) for p in copied if not os.path.isdir(p)}
    owners: set[str] = set()
    for listing in info.glob("*.list"):
        package = listing.stem.split(":")[0]
        for line in listing.read_text(errors="replace").splitlines():
            if line and not os.path.isdir(line) and os.path.realpath(line) in real_copied:
                owners.add(package)
                break
    stanzas = {}
    for stanza in status.read_text(errors="replace").split("\n\n"):
        match = re.search(r"^Package: (\S+)$", stanza, re.MULTILINE)
        if match:
            stanzas[match.group(1)] = stanza.strip() + "\n"
    (dest / "var/lib/dpkg/status.d").mkdir(parents=True, exist_ok=True)
    for package in sorted(owners):
        if package in stanzas:
            (dest / "var/lib/dpkg/status.d" / package).write_text(stanzas[package])
        copyright_file = Path("/usr/share/doc") / package / "copyright"
        if copyright_file.exists():
            target = dest / str(copyright_file).lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(copyright_file, target)


def add_python(fs: RootFS, venv: str) -> list[str]:
    """The interpreter, its names, the standard library; returns the ELF files to link."""
    executable = os.path.realpath(sys.executable)
    exe_dir = os.path.dirname(executable)
    for name in sorted(os.listdir(exe_dir)):  # python3, python, python3.X pointing at it
        path = os.path.join(exe_dir, name)
        if os.path.realpath(path) == executable:
            fs.add(path)
    home = Path(venv, "pyvenv.cfg").read_text()
    match = re.search(r"^home\s*=\s*(.+)$", home, re.MULTILINE)
    if match:  # the interpreter path the virtualenv was made with
        for name in ("python3", "python"):
            fs.add(os.path.join(match.group(1).strip(), name))

    stdlib = sysconfig.get_path("stdlib")
    config_dir = os.path.basename(sysconfig.get_config_var("LIBPL") or "config-")
    fs.add_tree(stdlib, STDLIB_SKIP_DIRS | {config_dir})
    modules = []
    dynload = sysconfig.get_config_var("DESTSHARED") or os.path.join(stdlib, "lib-dynload")
    fs.add_tree(dynload)
    for name in os.listdir(dynload):
        path = os.path.join(dynload, name)
        if DYNLOAD_SKIP.match(name):
            fs.target(path).unlink(missing_ok=True)
        elif name.endswith(".so"):
            modules.append(path)
    return [executable, *modules]


def main() -> None:
    dest, venv, uid = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    dest.mkdir(parents=True, exist_ok=True)
    fs = RootFS(dest)
    # Top-level symlinks first (merged /usr: /bin -> usr/bin, /lib -> usr/lib, ...).
    for entry in sorted(os.listdir("/")):
        if os.path.islink("/" + entry):
            fs.add("/" + entry)
    elves = [*add_python(fs, venv), *elf_files(venv)]
    for library in sorted(shared_libraries(elves)) + libgcc_s():
        fs.add(library)
    for path in ETC_FILES:
        fs.add(path)
    for tree in EXTRA_TREES:
        fs.add_tree(tree, {"right"})  # zoneinfo/right: leap-second variants nobody uses
    write_users(dest, uid)
    dpkg_records(dest, fs.copied)

    compiled = compileall.compile_dir(
        str(fs.target(sysconfig.get_path("stdlib"))),
        quiet=1,
        workers=0,
        stripdir=str(dest),
        prependdir="/",
    )
    if not compiled:
        raise SystemExit("runtime_root: compiling the standard library failed")


if __name__ == "__main__":
    main()
