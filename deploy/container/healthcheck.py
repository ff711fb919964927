"""The image's HEALTHCHECK: liveness of the web server in this container.

``herald serve`` and ``herald up`` (PID 1's command line): GET /health/live on the port they
listen on (``--port``, else HERALD_PORT, else 8000) must answer 200 within 3 seconds. Other
commands (``worker``, ``migrate``) serve no HTTP: the process being there is the check, so
this exits 0. Proxy variables are ignored: the request goes to this container's loopback.
"""

import os
import sys
import urllib.request
from pathlib import Path

WEB_COMMANDS = {"serve", "up"}


def main() -> int:
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
