"""Summarise py-spy ``--format raw`` output (collapsed stacks): where a process spent its time.

    .venv/bin/python bench/stacks.py PROFILE.txt [PROFILE.txt ...] [--top 25] [--idle]

Prints the functions with the most samples on top of the stack ("self") and the functions
of Herald, asyncpg, aiohttp, jinja2 and json that appear most anywhere in the stack
("inclusive"), as percentages of the samples taken while the process was busy (idle
samples, the event loop waiting in ``select``/``epoll``, are left out unless ``--idle``).
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

IDLE = re.compile(r"\b(select|poll|epoll_wait|_run_once \(asyncio/base_events)")
FRAME = re.compile(r"^(?P<func>.+?) \((?P<file>[^:]+)(?::\d+)?\)$")
INTERESTING = ("herald/", "asyncpg/", "aiohttp/", "jinja2/", "json/", "structlog/", "uuid")


def frame_name(frame: str) -> str:
    match = FRAME.match(frame.strip())
    if not match:
        return frame.strip()
    path = match["file"]
    for marker in ("site-packages/", "lib/python3.11/", "src/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{match['func']} ({path})"


def load(paths: list[Path], *, idle: bool) -> tuple[Counter[str], Counter[str], int]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text(errors="replace").splitlines():
            stack, _, count_text = line.rpartition(" ")
            if not stack or not count_text.isdigit():
                continue
            frames = [frame_name(f) for f in stack.split(";") if f.strip()]
            if not frames:
                continue
            if not idle and IDLE.search(frames[-1]):
                continue
            count = int(count_text)
            total += count
            own[frames[-1]] += count
            for name in set(frames):
                if any(marker in name for marker in INTERESTING):
                    inclusive[name] += count
    return own, inclusive, total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("profiles", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--idle", action="store_true", help="keep samples of the idle loop")
    args = parser.parse_args()
    own, inclusive, total = load(args.profiles, idle=args.idle)
    if not total:
        print("no samples")
        return 1
    print(f"{total:,} busy samples")
    print("\nself (top of stack)")
    for name, count in own.most_common(args.top):
        print(f"{100 * count / total:6.1f} %  {name}")
    print("\ninclusive (anywhere in the stack)")
    for name, count in inclusive.most_common(args.top):
        print(f"{100 * count / total:6.1f} %  {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
