"""The image's HEALTHCHECK: liveness of the web server in this container.

``herald serve`` and ``herald up`` (PID 1's command line): GET /health/live on the port they
listen on (``--port``, else HERALD_PORT, else 8000) must answer 200 within 3 seconds. Other
commands (``worker``, ``migrate``) serve no HTTP: the process being there is the check, so
this exits 0. Proxy variables are ignored: the request goes to this container's loopback.

``--self-test`` (run once by the Dockerfile while building, as the image's user) imports every
Herald module and a few standard-library ones that need shared libraries, and runs
``herald --help``: a library the runtime root lacks fails the build, not a deployment.
"""

import importlib
import os
import pkgutil
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

WEB_COMMANDS = {"serve", "up"}


def self_test() -> int:
    import herald

    for module in pkgutil.walk_packages(herald.__path__, "herald."):
        if ".migrations" not in module.name and not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    for name in ("asyncpg", "uvloop", "httptools", "ssl", "sqlite3", "uuid", "zoneinfo", "ctypes"):
        importlib.import_module(name)
    import ssl
    import zoneinfo

    ssl.create_default_context()  # the CA bundle loads
    zoneinfo.ZoneInfo("Europe/Berlin")
    herald_cli = shutil.which("herald") or "herald"
    subprocess.run([herald_cli, "--help"], check=True, stdout=subprocess.DEVNULL)  # noqa: S603
    return 0


def main() -> int:
    if sys.argv[1:] == ["--self-test"]:
        return self_test()
    try:
        argv = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        argv = []
    if not WEB_COMMANDS.intersection(argv):
        return 0
    port = os.environ.get("HERALD_PORT", "8000")
    for index, arg in enumerate(argv):
        if arg == "--port" and index + 1 < len(argv):
            port = argv[index + 1]
        elif arg.startswith("--port="):
            port = arg.split("=", 1)[1]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/health/live", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        sys.stderr.write(f"GET /health/live on port {port}: {exc}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
