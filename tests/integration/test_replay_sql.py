"""The replay SQL of docs/OPERATIONS.md does what the playbook says, run the way it says.

Herald has no replay command: the on-call engineer runs the two SQL blocks of the
"Replaying failed deliveries" playbook with psql. This test takes those blocks from the
document itself (the ```sql fence after each ``<!-- … -->`` marker), runs them with psql
and the same ``-v`` variables against a database whose failures came from a real worker,
and checks that only the chosen failures are queued again, that their issue is reopened,
that the workers are woken, and that a worker then sends each of them exactly once.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
import uuid
from collections.abc import Sequence
from pathlib import Path

import asyncpg
import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.pg_binaries import candidate_bin_dirs
from herald.delivery import repository
from herald.delivery.domain import DeliveryKind
from herald.email.message import (
    Accepted,
    EmailMessage,
    PermanentFailure,
    SendResult,
    TransientFailure,
)
from herald.issues.domain import IssueContent, IssueStatus
from herald.issues.service import IssueService
from tests.support.database import make_settings
from tests.support.newsletters import add_subscribers, drain, issue_worker, publish_now
from tests.support.queue import RecordingProvider, message_to

OPERATIONS = Path(__file__).resolve().parents[2] / "docs" / "OPERATIONS.md"
CONTENT = IssueContent.parse(title="Outage week", markdown="Hello {{ subscriber.name }}.")


def documented_sql(marker: str) -> str:
    """The ```sql block that follows ``<!-- marker -->`` in docs/OPERATIONS.md."""
    text = OPERATIONS.read_text(encoding="utf-8")
    found = re.search(
        rf"<!-- {re.escape(marker)}[^>]*-->\s*```sql\n(.*?)```", text, flags=re.DOTALL
    )
    assert found, f"docs/OPERATIONS.md has no ```sql block after <!-- {marker} -->"
    return found.group(1)


def psql_binary() -> str:
    for directory in candidate_bin_dirs():
        if (directory / "psql").exists():
            return str(directory / "psql")
    found = shutil.which("psql")
    assert found, "psql is needed to run the playbook's SQL as documented"
    return found


def run_psql(database_url: str, sql: str, tmp_path: Path, **variables: str) -> str:
    script = tmp_path / f"{uuid.uuid4().hex}.sql"
    script.write_text(sql, encoding="utf-8")
    args = [psql_binary(), database_url, "-X", "-v", "ON_ERROR_STOP=1"]
    for name, value in variables.items():
        args += ["-v", f"{name}={value}"]
    done = subprocess.run(
        [*args, "-f", str(script)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


class OutageProvider(RecordingProvider):
    """A provider in trouble: 503 for most, a permanent refusal for one address."""

    name = "outage"

    def __init__(self, refused: str) -> None:
        super().__init__()
        self.refused = refused

    async def send_batch(self, messages: Sequence[EmailMessage]) -> list[SendResult]:
        self.calls += 1
        results: list[SendResult] = []
        for message in messages:
            if message.recipient == self.refused:
                results.append(PermanentFailure("Postmark ErrorCode 406: inactive recipient"))
            elif message.recipient.startswith("reader0"):
                results.append(Accepted("accepted-before-the-outage"))
            else:
                results.append(TransientFailure("HTTP 503: Service Unavailable"))
        return results


@pytest.fixture
def one_attempt(database_url: str) -> Settings:
    # One attempt each, so the worker gives up at once ("gave up after 1 attempts: …").
    return make_settings(
        database_url,
        delivery={
            "poll_interval_seconds": 0.05,
            "retry_base_seconds": 0.05,
            "retry_max_seconds": 0.2,
            "lease_seconds": 5.0,
            "drain_seconds": 5.0,
            "max_attempts": 1,
        },
    )


async def enqueue_stored(db: Database, kind: DeliveryKind, recipient: str) -> int:
    async with db.transaction() as conn:
        return await repository.enqueue(
            conn, kind=kind, message=message_to(recipient), max_attempts=1
        )


async def deliveries(db: Database) -> dict[str, dict[str, object]]:
    async with db.connection() as conn:
        found = await conn.fetch(
            "SELECT recipient, kind, status, attempts, last_error FROM deliveries ORDER BY id"
        )
    return {row["recipient"]: dict(row) for row in found}


async def test_the_documented_replay_requeues_only_the_chosen_failures(
    db: Database, one_attempt: Settings, database_url: str, tmp_path: Path
) -> None:
    service = IssueService(db, one_attempt)
    await add_subscribers(db, 5)  # reader0 … reader4
    issue_id = await service.create_draft(CONTENT, None)
    assert await publish_now(service, issue_id) == 5
    await enqueue_stored(db, DeliveryKind.CONFIRMATION, "old-confirmation@example.com")
    await enqueue_stored(db, DeliveryKind.TEST, "earlier-outage@example.com")
    outage = OutageProvider(refused="reader4@example.com")
    await drain(issue_worker(db, one_attempt, outage))

    before = await deliveries(db)
    assert before["reader0@example.com"]["status"] == "sent"
    for failed in ("reader1", "reader2", "reader3", "old-confirmation", "earlier-outage"):
        row = before[f"{failed}@example.com"]
        assert row["status"] == "failed"
        assert str(row["last_error"]).startswith("gave up after 1 attempts: HTTP 503")
    assert str(before["reader4@example.com"]["last_error"]).startswith("Postmark ErrorCode 406")
    assert (await service.get(issue_id)).status is IssueStatus.SENT
    async with db.connection() as conn:
        # A confirmation whose link has expired, and a failure outside the window.
        await conn.execute(
            "UPDATE deliveries SET created_at = now() - interval '8 days'"
            " WHERE recipient = 'old-confirmation@example.com'"
        )
        await conn.execute(
            "UPDATE deliveries SET updated_at = now() - interval '2 days'"
            " WHERE recipient = 'earlier-outage@example.com'"
        )
        window = await conn.fetchrow(
            "SELECT (now() - interval '1 hour')::text AS since,"
            " (now() + interval '1 minute')::text AS until"
        )
    assert window is not None
    variables = {"since": window["since"], "until": window["until"]}

    preview = run_psql(database_url, documented_sql("replay-preview.sql"), tmp_path, **variables)
    assert "gave up after 1 attempts: HTTP 503" in preview
    assert "Postmark ErrorCode 406" in preview
    assert "confirmation" in preview
    assert " test " not in preview, "the test email failed outside the window"

    listener = await asyncpg.connect(database_url)
    woken: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener("herald_deliveries", lambda *args: woken.put_nowait(args[-1]))
    try:
        output = run_psql(
            database_url,
            documented_sql("replay.sql"),
            tmp_path,
            error_like="gave up%",
            **variables,
        )
        await asyncio.wait_for(woken.get(), timeout=5)
    finally:
        await listener.close()
    assert "UPDATE 3" in output, output  # the three issue rows; the issue itself: UPDATE 1

    after = await deliveries(db)
    for replayed in ("reader1", "reader2", "reader3"):
        row = after[f"{replayed}@example.com"]
        assert (row["status"], row["attempts"], row["last_error"]) == ("queued", 0, None)
    for kept in ("reader4", "old-confirmation", "earlier-outage"):
        assert after[f"{kept}@example.com"]["status"] == "failed", kept
    assert after["reader0@example.com"]["status"] == "sent"
    reopened = await service.get(issue_id)
    assert reopened.status is IssueStatus.PUBLISHING

    recovered = RecordingProvider()
    await drain(issue_worker(db, one_attempt, recovered))
    assert dict(recovered.sent) == {f"reader{n}@example.com": 1 for n in (1, 2, 3)}
    assert (await service.get(issue_id)).status is IssueStatus.SENT
    progress = await service.progress(issue_id)
    assert progress.counts == {"sent": 4, "failed": 1}


async def test_the_documented_replay_of_nothing_changes_nothing(
    db: Database, settings: Settings, database_url: str, tmp_path: Path
) -> None:
    service = IssueService(db, settings)
    await add_subscribers(db, 2)
    issue_id = await service.create_draft(CONTENT, None)
    await publish_now(service, issue_id)
    await drain(issue_worker(db, settings, RecordingProvider()))
    output = run_psql(
        database_url,
        documented_sql("replay.sql"),
        tmp_path,
        since="2000-01-01 00:00+00",
        until="2100-01-01 00:00+00",
        error_like="%",
    )
    assert "UPDATE 0" in output
    assert (await service.get(issue_id)).status is IssueStatus.SENT


async def test_the_documented_retry_now_makes_waiting_retries_due(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    # Two attempts and a long backoff: after one 503 the row waits for its second try.
    patient = make_settings(
        database_url, delivery={"max_attempts": 2, "retry_base_seconds": 3600.0}
    )
    waiting = await enqueue_stored(db, DeliveryKind.TEST, "reader1@example.com")
    async with db.transaction() as conn:
        untouched = await repository.enqueue(
            conn, kind=DeliveryKind.TEST, message=message_to("later@example.com"), max_attempts=2
        )
        await conn.execute(
            "UPDATE deliveries SET available_at = now() + interval '1 hour' WHERE id = $1",
            untouched,
        )
    async with db.connection() as conn:
        await conn.execute("UPDATE deliveries SET max_attempts = 2 WHERE id = $1", waiting)
    await drain(issue_worker(db, patient, OutageProvider(refused="nobody@example.com")))
    before = await deliveries(db)
    assert before["reader1@example.com"]["status"] == "queued"
    assert before["reader1@example.com"]["last_error"] == "HTTP 503: Service Unavailable"

    output = run_psql(database_url, documented_sql("retry-now.sql"), tmp_path)
    assert "UPDATE 1" in output, output  # not the row queued for later that never failed
    recovered = RecordingProvider()
    await drain(issue_worker(db, patient, recovered))
    assert dict(recovered.sent) == {"reader1@example.com": 1}
    after = await deliveries(db)
    assert after["reader1@example.com"]["status"] == "sent"
    assert after["later@example.com"]["status"] == "queued"
