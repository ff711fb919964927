"""The audience issue's "Must show", walked by an editor in Chromium against real
``herald serve`` and ``herald worker`` processes, mail going to the development outbox:

1. an editor (made with ``herald users create --role editor``) signs in and puts one
   address of the coming file on the suppression list;
2. imports a CSV (email, name, city, plan) through /admin/subscribers/import in
   ``confirmed`` mode with the attestation; the worker is started only once the import's
   page shows the job unfinished, and the page follows it to its end over /admin/live —
   the progress text moves (recorded by a MutationObserver) in the same document, with no
   reload;
3. builds the segment city = Nantes and plan = pro in /admin/segments and saves it;
4. suppresses a second matching reader, now imported;
5. writes an issue for the default list ∩ that segment: the publish confirmation counts
   exactly the file's matching rows less the two suppressed; publishes;
6. once every delivery of the issue has settled, the outbox holds exactly one message for
   each of those readers (its attributes rendered in the body), none for anyone else.

Screenshots of the key steps at 1280 and 375 px (light and dark) go to a folder the test
prints, with a copy in /tmp/herald-screens-audience-e2e; the camera of
tests/support/browser.py checks each page (no CSP violation, console error, foreign host,
or anything wider than a phone).

The file has 60,000 rows: the import's page runs the job inline for 2 s before it is shown
(15,000 rows at load average 7.5 on 2 cores; more on an idle machine), a batch is 5,000
rows, and the progress can only be seen moving when the file outlasts the inline run.
"""

from __future__ import annotations

import contextlib
import re
import signal
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support.auth import run_herald
from tests.support.browser import Camera, camera_page, chromium, require_browser, sign_in
from tests.support.database import free_port
from tests.support.processes import herald_env, herald_process, wait_exit, wait_ready
from tests.support.queue import wait_until

HUMAN_COPY = Path("/tmp/herald-screens-audience-e2e")  # noqa: S108 - for a human to look at
ROWS = 60_000
CITIES = ("Nantes", "Lyon", "Nantes", "Brest", "nantes")
PLANS = ("pro", "free", "team", "pro", "", "Pro")
REJECTED = 123  # the row index whose address is not one
SUPPRESSED_BEFORE = 0  # reader0: Nantes, pro — suppressed before the import (skipped)
SUPPRESSED_AFTER = 30  # reader30: Nantes, pro — suppressed once imported
DUPLICATE = 60  # reader60: Nantes, pro — twice in the file, mailed once
EDITOR = "editor"
EDITOR_PASSWORD = "an editor's long passphrase"
TITLE = "Nantes pro digest"
ISSUE_URL = re.compile(r".*/admin/issues/([0-9a-f-]{36})$")
JOB_URL = re.compile(r".*/admin/subscribers/import/[0-9a-f-]{36}$")

# Every change of the job's state text, recorded in the page (same document: a reload
# would lose both the list and the marker).
FOLLOW_STATE = """
() => {
  window.__sameDocument = "yes";
  window.__states = [];
  const read = () => {
    const el = document.querySelector("[data-job-state]");
    const text = el ? el.textContent.replace(/\\s+/g, " ").trim() : "";
    if (text && window.__states[window.__states.length - 1] !== text) {
      window.__states.push(text);
    }
  };
  read();
  new MutationObserver(read).observe(document.querySelector("main"), {
    subtree: true, childList: true, characterData: true,
  });
}
"""


def email(i: int) -> str:
    return f"reader{i}@example.net"


def row(i: int) -> tuple[str, str, str, str]:
    address = "not an address" if i == REJECTED else email(i)
    return (address, f"Reader {i}", CITIES[i % len(CITIES)], PLANS[i % len(PLANS)])


def write_csv(path: Path) -> set[str]:
    """The file (the duplicate row last); the addresses that match city = Nantes and
    plan = pro."""
    rows = [row(i) for i in range(ROWS)] + [row(DUPLICATE)]
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write("email,name,city,plan\r\n")
        out.writelines(",".join(r) + "\r\n" for r in rows)
    return {r[0] for r in rows if r[2] == "Nantes" and r[3] == "pro" and "@" in r[0]}


@pytest.mark.slow
async def test_import_segment_publish_as_an_editor(database_url: str, tmp_path: Path) -> None:
    playwright_api = require_browser()
    matching = write_csv(tmp_path / "readers.csv")
    assert {email(SUPPRESSED_BEFORE), email(SUPPRESSED_AFTER), email(DUPLICATE)} <= matching
    expected = matching - {email(SUPPRESSED_BEFORE), email(SUPPRESSED_AFTER)}
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = herald_env(
        HERALD_DATABASE_URL=database_url,
        HERALD_PORT=str(port),
        HERALD_BASE_URL=base_url,
        HERALD_SECRET_KEY="s" * 48,
        HERALD_DATA_DIR=str(tmp_path / "data"),
        HERALD_EMAIL__PROVIDER="outbox",
        HERALD_DELIVERY__POLL_INTERVAL_SECONDS="0.1",
    )
    created = await run_herald(
        "users", "create", EDITOR, "--role", "editor", "--password-stdin",
        env=env, stdin=EDITOR_PASSWORD,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    async with contextlib.AsyncExitStack() as stack:
        serve = await stack.enter_async_context(
            herald_process("serve", env=env, log_path=tmp_path / "serve.log")
        )
        await wait_ready(base_url)
        camera = Camera(tmp_path / "screens", port)
        workers: list[Any] = []

        async def start_worker() -> None:
            workers.append(
                await stack.enter_async_context(
                    herald_process("worker", env=env, log_path=tmp_path / "worker.log")
                )
            )

        async with chromium(playwright_api) as browser:
            context = await browser.new_context(base_url=base_url)
            page = await camera_page(context, camera)
            await sign_in(page, EDITOR, EDITOR_PASSWORD)
            await suppress(page, camera, email(SUPPRESSED_BEFORE), "suppressed-before")
            await import_file(page, camera, tmp_path / "readers.csv", start_worker)
            await build_segment(page, camera, len(matching) - 1)
            await suppress(page, camera, email(SUPPRESSED_AFTER), "suppressed-after")
            issue_id = await publish(page, camera, len(expected))
            sent = await delivered(database_url, issue_id, len(expected))
            await page.reload()
            await camera.shoot(page, "delivered")
        serve.send_signal(signal.SIGTERM)
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
        assert await wait_exit(serve, 30) == 0, (tmp_path / "serve.log").read_text()
        for worker in workers:
            assert await wait_exit(worker, 30) == 0, (tmp_path / "worker.log").read_text()

    camera.copy_for_a_human(HUMAN_COPY)
    assert camera.problems == [], "\n".join(camera.problems)
    assert camera.foreign_hosts() == set(), camera.requested
    recipients = Counter(m["recipient"] for m in sent)
    assert set(recipients) == expected, (
        f"missing {sorted(expected - set(recipients))[:5]},"
        f" unexpected {sorted(set(recipients) - expected)[:5]}"
    )
    assert recipients.most_common(1)[0][1] == 1, recipients.most_common(3)
    duplicate = next(m for m in sent if m["recipient"] == email(DUPLICATE))
    body = re.sub(r"\s+", " ", duplicate["text_body"])  # the text body is wrapped
    assert f"Hello Reader {DUPLICATE} of Nantes, on the pro plan." in body, body


async def suppress(p: Any, camera: Camera, address: str, shot: str) -> None:
    await p.goto("/admin/suppressions")
    await p.fill("#email", address)
    await p.click("text=Add to the suppression list")
    await p.wait_for_selector(f"text={address} added to the suppression list.")
    await camera.shoot(p, shot)


async def import_file(p: Any, camera: Camera, file: Path, start_worker: Any) -> None:
    await p.goto("/admin/subscribers/import")
    await p.set_input_files("#file", str(file))
    await p.click("main form button[type=submit]")
    await p.wait_for_url(JOB_URL)
    assert [await p.input_value(f"#role_{i}") for i in range(4)] == [
        "email",
        "name",
        "attribute",
        "attribute",
    ]
    await p.check("input[name=mode][value=confirmed]")
    await p.check("input[name=attest]")
    assert await p.is_checked("input[name=list][value=default]")
    await camera.shoot(p, "import-mapping")
    await p.click("text=Start the import")
    await p.wait_for_url(JOB_URL)
    await p.evaluate(FOLLOW_STATE)
    states: list[str] = await p.evaluate("window.__states")
    assert states, "the page shows no job state"
    assert "Import finished" not in states[0], (
        f"the import ended before its page was shown ({states}): the file is too small"
    )
    await camera.shoot(p, "import-waiting")
    await start_worker()
    await p.wait_for_function(
        "() => window.__states.some(s => s.includes('Import finished'))", timeout=240_000
    )
    states = await p.evaluate("window.__states")
    assert await p.evaluate("window.__sameDocument") == "yes", "the page was reloaded"
    done = [int(m.group(1).replace(",", "")) for s in states if (m := re.match(r"([\d,]+)", s))]
    assert done == sorted(done), states
    assert len(set(done)) >= 2, f"the progress never moved on the page: {states}"
    final = states[-1]
    assert "Import finished" in final, states
    await p.reload()
    terms = await p.eval_on_selector_all("dl.meta > *", "els => els.map(e => e.textContent)")
    assert dict(zip(terms[::2], terms[1::2], strict=True)) == {
        "Imported": f"{ROWS - 2:,}",  # less the rejected row and the suppressed address
        "Updated": "1",  # the duplicate row
        "Skipped (suppressed)": "1",
        "Rejected": "1",
    }
    await camera.shoot(p, "import-done")


async def build_segment(p: Any, camera: Camera, count: int) -> None:
    await p.goto("/admin/segments")
    await p.click("text=New segment")
    await p.wait_for_url("**/admin/segments/new")
    await p.fill("#name", "Nantes pro")
    await p.click("button[aria-label='Remove condition 1']")  # the status row it starts with
    for i, (key, value) in enumerate([("city", "Nantes"), ("plan", "pro")]):
        await p.select_option("#new_field", "attribute")
        await p.click("button[value=add]")
        await p.fill(f"#key_{i}", key)
        await p.fill(f"#value_{i}", value)
    await p.click("main button[value=preview]:not(.visually-hidden)")
    await p.wait_for_selector(f"text=Matches {count:,} subscribers")
    assert await p.locator("li.condition-row").count() == 2
    await camera.shoot(p, "segment-preview")
    await p.click("button[value=save]")
    await p.wait_for_url(re.compile(r".*/admin/segments/[0-9a-f-]{36}$"))
    assert "The segment has been saved." in await p.text_content("main")
    await camera.shoot(p, "segment-saved")


async def publish(p: Any, camera: Camera, count: int) -> uuid.UUID:
    await p.goto("/admin/issues/new")
    await p.fill("#title", TITLE)
    await p.fill(
        "#markdown",
        "Hello {{ subscriber.name }} of {{ subscriber.attributes.city }},"
        " on the {{ subscriber.attributes.plan }} plan.",
    )
    checked = await p.eval_on_selector_all(
        "#send-to input[name=lists]:checked", "els => els.map(e => e.value)"
    )
    assert checked == ["default"]
    await p.select_option("#segment_id", label="Segment: Nantes pro")
    await camera.shoot(p, "issue-target")
    await p.click("main button[type=submit]:has-text('Save draft')")
    await p.wait_for_url(ISSUE_URL)
    found = ISSUE_URL.match(p.url)
    assert found
    await p.click("#publish")
    text = re.sub(r"\s+", " ", await p.text_content("#publish-count") or "")
    assert f"It goes to {count:,} confirmed subscribers" in text, text
    await camera.shoot(p, "publish-confirm")
    await p.click("#confirm-publish")
    await p.wait_for_url(ISSUE_URL)
    await camera.shoot(p, "published")
    return uuid.UUID(found.group(1))


async def delivered(database_url: str, issue_id: uuid.UUID, count: int) -> list[asyncpg.Record]:
    """The outbox's messages of the issue, once its deliveries have all settled and at
    least ``count`` are there."""
    conn = await asyncpg.connect(database_url)
    try:

        async def settled() -> bool:
            open_ = await conn.fetchval(
                "SELECT count(*) FROM deliveries"
                " WHERE issue_id = $1 AND status IN ('queued', 'sending')",
                issue_id,
            )
            sent = await conn.fetchval(
                "SELECT count(*) FROM outbox_messages WHERE subject = $1", TITLE
            )
            return bool(open_ == 0 and sent >= count)

        await wait_until(settled, timeout=180, interval=0.2)
        return await conn.fetch(
            "SELECT recipient, text_body FROM outbox_messages WHERE subject = $1", TITLE
        )
    finally:
        await conn.close()
