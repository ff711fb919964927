"""What one delivery of P1's issue costs in CPU, outside the database: a worker's render
(``IssueDeliveries._render_batch``: the bodies, the layout, the links) and the Postmark
batch JSON, per message, and what the far end pays to parse that JSON.

No processes, no network: the same 500-recipient batch rendered and encoded ``--rounds``
times in this process; the best round is reported (the least disturbed by anything else
on the machine), so the figures compare across builds even on a busy machine, where P1's
throughput does not. To compare a build with an older one, run the old tree's code with
this script (the script and P1's issue come from this checkout)::

    .venv/bin/python bench/render_cost.py [--rounds 40] [--links N] [--tracking]
    git archive REV | tar -x -C /tmp/old && \\
        PYTHONPATH=/tmp/old/src .venv/bin/python bench/render_cost.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.append(str(ROOT / "src"))  # after PYTHONPATH: an old tree's code comes first
sys.path.insert(0, str(ROOT / "bench"))

from _batch import issue_batch  # noqa: E402
from herald.core.config import Settings  # noqa: E402
from herald.email import postmark  # noqa: E402
from herald.engagement.links import tracked_links  # noqa: E402
from herald.issues import repository  # noqa: E402
from publish import ISSUE  # noqa: E402

BATCH = 500


def encoder() -> Any:
    """The provider's batch encoder; builds before it had one encoded a list of dicts."""
    encode = getattr(postmark, "_encode_batch", None)
    if encode is not None:
        return encode
    return lambda messages: postmark._ENCODER.encode(
        [postmark._to_postmark(m) for m in messages]
    ).encode("ascii")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--links", type=int, default=0, help="links added to P1's issue")
    parser.add_argument(
        "--tracking", action="store_true", help="engagement tracking on: pixel, click URLs"
    )
    args = parser.parse_args()
    settings = Settings(  # type: ignore[call-arg]
        database_url="postgresql://bench@localhost/bench",
        base_url="https://news.example.com",
        secret_key="s" * 48,
    )
    issue_id = uuid.uuid4()
    html = ISSUE.html + "".join(
        f'<p><a href="https://example.org/story/{n}">Story {n}</a></p>' for n in range(args.links)
    )
    data = repository.RenderData(id=issue_id, title=ISSUE.title, html=html, text=ISSUE.text)
    tracked = {issue_id: tracked_links(html, settings.public_base_url)} if args.tracking else None
    work = issue_batch(settings, issue_id, BATCH)
    deliveries, batch, recipients = work.deliveries, work.batch, work.recipients
    # Compiles the issue (with its stored links when tracked).
    deliveries._render_batch(batch, {issue_id: data}, recipients, None, None, tracked)
    encode = encoder()
    render = body = parse = float("inf")
    size = 0
    for _ in range(args.rounds):
        started = time.process_time()
        messages = deliveries._render_batch(batch, {}, recipients)
        rendered = time.process_time()
        payload = encode(messages)
        encoded = time.process_time()
        json.loads(payload)
        parsed = time.process_time()
        render = min(render, rendered - started)
        body = min(body, encoded - rendered)
        parse = min(parse, parsed - encoded)
        size = len(payload)
    per = 1e6 / BATCH
    print(
        f"{'tracked' if args.tracking else 'untracked'}, {args.links} links; "
        f"per message, best of {args.rounds} rounds of {BATCH}: render {render * per:.1f} us, "
        f"JSON {body * per:.1f} us, JSON size {size / BATCH / 1024:.2f} KiB; "
        f"the sink's json.loads {parse * per:.1f} us"
    )


if __name__ == "__main__":
    main()
