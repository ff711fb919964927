"""A private Postfix instance (Debian's ``postfix`` package) for bounce tests: it listens
on a port of its own, relays everything to a given SMTP server and, when that server
refuses a recipient, writes the delivery status notification Postfix writes, to the
message's envelope sender, through the same relay. Its configuration, queue and log
live in a temporary directory; the system's Postfix (if any) is not touched.

Postfix's master runs as root and its daemons as the ``postfix`` user, so this needs
root; tests skip without it.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_MASTER_CF = """\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

_MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = {hostname}
mydomain = {domain}
myorigin = {domain}
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{relay_port}
smtp_tls_security_level = none
smtpd_tls_security_level = none
disable_dns_lookups = yes
smtp_host_lookup = native
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
local_recipient_maps =
"""


def available() -> str | None:
    """Why a private Postfix cannot run here, or None when it can."""
    if shutil.which("postfix") is None:
        return "Postfix is not installed (Debian: apt-get install postfix)"
    if os.geteuid() != 0:
        return "a Postfix master runs as root"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "no postfix user"
    return None


def _postfix(config: Path, *command: str) -> None:
    # Postfix writes its errors to the terminal only; they are in the maillog as well.
    subprocess.run(
        ["postfix", "-c", str(config), *command],
        check=True,
        capture_output=True,
        timeout=60,
    )


@contextmanager
def postfix(*, port: int, relay_port: int, domain: str = "news.example.org") -> Iterator[Path]:
    """Run a private Postfix for the block; yields its mail log."""
    reason = available()
    if reason is not None:
        if os.environ.get("CI", "").lower() == "true":  # CI installs it (make mta): must run
            pytest.fail(f"the Postfix test cannot run in CI: {reason}")
        pytest.skip(reason)
    # Not under pytest's tmp_path: its directories are private to root, and Postfix's
    # daemons (the postfix user) must reach their data directory.
    root = Path(tempfile.mkdtemp(prefix="herald-postfix-"))
    root.chmod(0o755)
    config, data = root / "etc", root / "data"
    for directory in (config, data, root / "queue"):
        directory.mkdir(parents=True, exist_ok=True)
    shutil.chown(data, user="postfix")
    (config / "master.cf").write_text(_MASTER_CF.format(port=port))
    (config / "main.cf").write_text(
        _MAIN_CF.format(root=root, hostname=f"mail.{domain}", domain=domain, relay_port=relay_port)
    )
    log = root / "maillog"
    try:
        _postfix(config, "start")
    except subprocess.CalledProcessError as exc:
        detail = log.read_text() if log.exists() else exc.stderr.decode()
        raise RuntimeError(f"postfix did not start: {detail[-2000:]}") from exc
    try:
        yield log
    finally:
        try:
            _postfix(config, "stop")
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            pid = (root / "queue" / "pid" / "master.pid").read_text().strip()
            os.kill(int(pid), 9)
        shutil.rmtree(root, ignore_errors=True)
