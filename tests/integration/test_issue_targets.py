"""An issue goes to the confirmed members of its lists (none chosen: the default list),
narrowed to its segment: who gets it, exactly once, through chunks and crashes."""

from __future__ import annotations

import json
import uuid

import pytest

from herald.core.config import Settings
from herald.core.db import Database
from herald.core.errors import Conflict, ValidationError
from herald.issues import repository, targets
from herald.issues.domain import IssueContent, IssueStatus, TargetChoice
from herald.issues.service import IssueService
from tests.support.bulk import copy_subscribers
from tests.support.newsletters import add_subscribers, drain, fan_out, issue_worker
from tests.support.queue import RecordingProvider

CONTENT = IssueContent.parse(title="Weekly", text_content="Hello {{ subscriber.name }}")


async def make_list(db: Database, slug: str) -> uuid.UUID:
    async with db.connection() as conn:
        list_id: uuid.UUID = await conn.fetchval(
            "INSERT INTO lists (slug, name) VALUES ($1, $2) RETURNING id", slug, slug.title()
        )
    return list_id


async def join(db: Database, slug: str, ids: list[uuid.UUID], status: str = "confirmed") -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
            " SELECT l.id, s, $3, 'test' FROM lists l, unnest($2::uuid[]) AS s WHERE l.slug = $1"
            " ON CONFLICT (list_id, subscriber_id) DO UPDATE SET status = EXCLUDED.status",
            slug,
            ids,
            status,
        )


async def recipients(db: Database, issue_id: uuid.UUID) -> list[uuid.UUID]:
    async with db.connection() as conn:
        rows = await conn.fetch(
            "SELECT subscriber_id FROM deliveries WHERE issue_id = $1 ORDER BY subscriber_id",
            issue_id,
        )
    return [r["subscriber_id"] for r in rows]


def service_with_chunk(db: Database, settings: Settings, chunk: int) -> IssueService:
    delivery = settings.delivery.model_copy(update={"fanout_chunk": chunk})
    return IssueService(db, settings.with_overrides(delivery=delivery))


async def publish_to(
    service: IssueService, *slugs: str, segment_id: uuid.UUID | None = None
) -> uuid.UUID:
    target = TargetChoice.parse(list(slugs), segment_id) if slugs else None
    issue_id = await service.create_draft(CONTENT, None, target)
    await service.publish(issue_id)
    await fan_out(service)
    return issue_id


async def test_a_new_issue_goes_to_the_default_list_and_shows_its_target(
    db: Database, settings: Settings
) -> None:
    service = IssueService(db, settings)
    issue = await service.get(await service.create_draft(CONTENT, None))
    assert issue.target.slugs == ("default",)
    assert issue.target.describe() == "Newsletter"
    await make_list(db, "offers")
    chosen = TargetChoice.parse(["offers", "default"])
    issue = await service.revise(issue.id, CONTENT, chosen)
    assert sorted(issue.target.slugs) == ["default", "offers"]
    assert issue.target.describe() == "Newsletter and Offers"


async def test_unknown_lists_and_segments_are_a_400_naming_the_field_and_save_nothing(
    db: Database, settings: Settings
) -> None:
    service = IssueService(db, settings)
    with pytest.raises(ValidationError) as missing:
        await service.create_draft(CONTENT, None, TargetChoice.parse(["nope"]))
    assert missing.value.field == "lists"
    assert "nope" in missing.value.message
    with pytest.raises(ValidationError) as no_segment:
        await service.create_draft(CONTENT, None, TargetChoice.parse(["default"], uuid.uuid4()))
    assert no_segment.value.field == "segment_id"
    for bad in ([], ["Not A Slug"], "default", [1], ["x" * 61]):
        with pytest.raises(ValidationError) as shape:
            TargetChoice.parse(bad)
        assert shape.value.field == "lists"
    with pytest.raises(ValidationError) as segment_shape:
        TargetChoice.parse(["default"], "not-a-uuid")
    assert segment_shape.value.field == "segment_id"
    async with db.connection() as conn:
        assert await conn.fetchval("SELECT count(*) FROM newsletter_issues") == 0


async def test_a_published_issue_keeps_its_target(db: Database, settings: Settings) -> None:
    await make_list(db, "offers")
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None, TargetChoice.parse(["offers"]))
    await service.publish(issue_id)
    with pytest.raises(Conflict):
        await service.update(issue_id, CONTENT, TargetChoice.parse(["default"]))
    async with db.transaction() as conn:
        assert not await targets.set_target(conn, issue_id, [], None)
    assert (await service.get(issue_id)).target.slugs == ("offers",)


async def test_readers_are_the_confirmed_members_of_any_target_list_once(
    db: Database, settings: Settings
) -> None:
    await make_list(db, "a")
    await make_list(db, "b")
    both = await add_subscribers(db, 4, prefix="both")
    only_a = await add_subscribers(db, 3, prefix="a")
    only_b = await add_subscribers(db, 3, prefix="b")
    pending_member = await add_subscribers(db, 2, prefix="pending")
    left_list = await add_subscribers(db, 2, prefix="left")
    unsubscribed = await add_subscribers(db, 2, prefix="gone")
    default_only = await add_subscribers(db, 2, prefix="default")
    await join(db, "a", both + only_a + unsubscribed)
    await join(db, "b", both + only_b)
    await join(db, "a", pending_member, "pending_confirmation")
    await join(db, "b", left_list, "unsubscribed")
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE subscriptions SET status = 'unsubscribed' WHERE id = ANY($1)", unsubscribed
        )
        # The address is unsubscribed but (a repair left) a confirmed membership: not mailed.
        await conn.execute(
            "UPDATE list_memberships SET status = 'confirmed' WHERE subscriber_id = ANY($1)",
            unsubscribed,
        )

    service = service_with_chunk(db, settings, 3)  # chunks smaller than each list
    issue_id = await publish_to(service, "a", "b")
    assert await recipients(db, issue_id) == sorted(both + only_a + only_b)
    issue = await service.get(issue_id)
    assert issue.recipients == 10
    assert issue.target.describe() == "A and B"

    default_issue = await publish_to(service)  # every reader was added to default by 0018
    everyone = both + only_a + only_b + pending_member + left_list + default_only
    assert await recipients(db, default_issue) == sorted(everyone)


async def test_the_default_lists_readers_the_backfill_has_not_reached_get_it(
    db: Database, settings: Settings
) -> None:
    """Subscriptions from before migration 0018 have no membership until the backfill job
    reaches them; an issue to the default list still goes to them (once)."""
    await make_list(db, "a")
    old = await add_subscribers(db, 5, prefix="old")
    old_pending = await add_subscribers(db, 1, prefix="oldpending", status="pending_confirmation")
    new = await add_subscribers(db, 2, prefix="new")
    await join(db, "a", old[:2] + new[:1])
    async with db.connection() as conn:
        await conn.execute(
            "DELETE FROM list_memberships m USING lists l WHERE l.id = m.list_id"
            " AND l.slug = 'default' AND m.subscriber_id = ANY($1)",
            old + old_pending,
        )
        await conn.execute(
            "UPDATE subscriptions SET created_at = now() - interval '1 year' WHERE id = ANY($1)",
            old + old_pending,
        )
        await conn.execute("UPDATE lists SET created_at = now() - interval '1 day'")
    service = service_with_chunk(db, settings, 2)
    issue_id = await service.create_draft(CONTENT, None)
    # Only a default-list issue counts them (old[:2] are list a's, so not waiting for it).
    assert (await service.publish_preview(issue_id))[1] == 3 + 2
    await service.publish(issue_id)
    await fan_out(service)
    assert await recipients(db, issue_id) == sorted(old[2:] + new)
    assert (await service.get(issue_id)).recipients == 5
    issue_a = await publish_to(service, "a")
    assert await recipients(db, issue_a) == sorted(old[:2] + new[:1])


async def test_once_the_backfill_is_finished_the_unlisted_step_reads_nobody(
    db: Database, settings: Settings
) -> None:
    """A finished default-list backfill (its row in backfills) means every old subscription
    has a membership: the count and the fan-out's last step then skip their scan of the old
    subscriptions (160 ms at 300,000 each, per issue and per publish confirmation). Shown
    here with an unlisted old reader that cannot exist once the backfill is done."""
    old = await add_subscribers(db, 3, prefix="old")
    async with db.connection() as conn:
        await conn.execute("DELETE FROM list_memberships WHERE subscriber_id = ANY($1)", old)
        await conn.execute(
            "UPDATE subscriptions SET created_at = now() - interval '1 year' WHERE id = ANY($1)",
            old,
        )
        await conn.execute("UPDATE lists SET created_at = now() - interval '1 day'")
        await conn.execute("INSERT INTO backfills (name) VALUES ('default_list')")
    service = service_with_chunk(db, settings, 2)
    issue_id = await service.create_draft(CONTENT, None)
    assert (await service.publish_preview(issue_id))[1] == 0
    await service.publish(issue_id)
    await fan_out(service)
    assert await recipients(db, issue_id) == []


async def test_an_issue_to_a_segment_goes_to_the_lists_readers_in_it(
    db: Database, settings: Settings
) -> None:
    await make_list(db, "a")
    readers = await add_subscribers(db, 6)
    await join(db, "a", readers[:4])
    async with db.connection() as conn:
        await conn.execute(
            'UPDATE subscriptions SET attributes = \'{"city": "Paris"}\' WHERE id = ANY($1)',
            [readers[0], readers[1], readers[5]],
        )
        segment_id = await conn.fetchval(
            "INSERT INTO segments (name, filter) VALUES ('Paris', $1::jsonb) RETURNING id",
            json.dumps({"attribute": "city", "op": "eq", "type": "string", "value": "Paris"}),
        )
    service = service_with_chunk(db, settings, 1)
    draft = await service.create_draft(CONTENT, None, TargetChoice.parse(["a"], str(segment_id)))
    issue, count = await service.publish_preview(draft)
    assert count == 2
    assert issue.target.describe() == "A, segment “Paris”"
    await service.publish(draft)
    await fan_out(service)
    assert await recipients(db, draft) == sorted(readers[:2])


async def test_a_segment_whose_filter_is_broken_refuses_the_publish(
    db: Database, settings: Settings
) -> None:
    async with db.connection() as conn:
        segment_id = await conn.fetchval(
            "INSERT INTO segments (name, filter) VALUES ('Broken', '{\"nope\": 1}') RETURNING id"
        )
    service = IssueService(db, settings)
    draft = await service.create_draft(CONTENT, None, TargetChoice.parse(["default"], segment_id))
    with pytest.raises(ValidationError) as refused:
        await service.publish(draft)
    assert refused.value.field == "segment_id"
    assert "Broken" in refused.value.message
    assert (await service.get(draft)).status is IssueStatus.DRAFT


async def test_a_crashed_chunk_resumes_and_queues_every_reader_of_the_lists_once(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    await make_list(db, "a")
    await make_list(db, "b")
    readers = await add_subscribers(db, 40)
    await join(db, "a", readers[:25])
    await join(db, "b", readers[15:35])
    service = service_with_chunk(db, settings, 6)
    issue_id = await service.create_draft(CONTENT, None, TargetChoice.parse(["a", "b"]))
    await service.publish(issue_id)
    assert await service.fan_out_step() is not None
    assert await service.fan_out_step() is not None
    real_chunk = repository.fan_out_chunk

    async def crash_after_inserting(*args: object, **kwargs: object) -> object:
        await real_chunk(*args, **kwargs)  # type: ignore[arg-type]
        raise RuntimeError("worker lost mid-chunk")

    monkeypatch.setattr(repository, "fan_out_chunk", crash_after_inserting)
    await service.fan_out_step()
    monkeypatch.setattr(repository, "fan_out_chunk", real_chunk)
    assert len(await recipients(db, issue_id)) == 12, "the failed chunk was rolled back"
    async with db.connection() as conn:
        await conn.execute("UPDATE newsletter_issues SET fanout_retry_at = now()")
    await fan_out(service)
    assert await recipients(db, issue_id) == sorted(readers[:35])
    assert (await service.get(issue_id)).recipients == 35


async def test_attributes_fill_the_template_and_are_read_only_when_used(
    db: Database, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    [paris, nowhere] = await add_subscribers(db, 2)
    async with db.connection() as conn:
        await conn.execute(
            'UPDATE subscriptions SET attributes = \'{"city": "Paris", "plan": {"tier": 2}}\''
            " WHERE id = $1",
            paris,
        )
    reads: list[bool] = []
    real = repository.subscribers_for_rendering

    async def spy(*args: object, **kwargs: object) -> object:
        reads.append(bool(kwargs.get("with_attributes")))
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(repository, "subscribers_for_rendering", spy)
    service = IssueService(db, settings)
    html = (
        "<p>{{ subscriber.name }} in {{ subscriber.attributes.city | default('your town') }},"
        " tier {{ subscriber.attributes.plan.tier }}{{ subscriber.attributes.a.b }}.</p>"
    )
    with_attributes = IssueContent.parse(title="Local", html_content=html)
    issue_id = await service.create_draft(with_attributes, None)
    await service.publish(issue_id)
    provider = RecordingProvider()
    await drain(issue_worker(db, settings, provider))
    bodies = {m.recipient: m.html_body for m in provider.messages}
    assert "Reader 0 in Paris, tier 2." in bodies["reader0@example.com"]
    assert "Reader 1 in your town, tier ." in bodies["reader1@example.com"]
    assert reads
    assert all(reads)
    for message in provider.messages:
        unsubscribe = dict(message.headers)["List-Unsubscribe"]
        assert unsubscribe.endswith(f"&issue={issue_id}>")

    reads.clear()
    plain = await service.create_draft(CONTENT, None)
    await service.publish(plain)
    await drain(issue_worker(db, settings, provider))
    assert reads
    assert not any(reads), "an issue that does not use them reads no attributes"
    assert nowhere


@pytest.mark.slow
@pytest.mark.timeout(1800)  # loading 1M subscribers takes minutes on a shared 2-core machine
async def test_two_overlapping_lists_of_600k_queue_each_reader_exactly_once(
    db: Database, settings: Settings
) -> None:
    """1,000,000 readers; list a has the first 600,000 (by address), b the last 600,000:
    200,000 are on both. The fan-out (chunks of 50,000 merged from both lists' ranges)
    queues 1,000,000 deliveries, one per reader."""
    await copy_subscribers(db, 1_000_000)
    await make_list(db, "a")
    await make_list(db, "b")
    async with db.transaction() as conn:
        await conn.execute("SET LOCAL statement_timeout = 0")
        await conn.execute(
            "WITH s AS (SELECT id, row_number() OVER (ORDER BY email) AS n FROM subscriptions)"
            " INSERT INTO list_memberships (list_id, subscriber_id, status, source)"
            " SELECT l.id, s.id, 'confirmed', 'test' FROM s JOIN lists l"
            " ON (l.slug = 'a' AND s.n <= 600000) OR (l.slug = 'b' AND s.n > 400000)",
            timeout=600,  # test data: the client's own command timeout is 20 s
        )
        await conn.execute("ANALYZE list_memberships", timeout=600)
    service = IssueService(db, settings)
    issue_id = await service.create_draft(CONTENT, None, TargetChoice.parse(["a", "b"]))
    await service.publish(issue_id)
    await fan_out(service)
    async with db.connection() as conn:
        row = await conn.fetchrow(
            "SELECT count(*) AS n, count(DISTINCT subscriber_id) AS readers"
            " FROM deliveries WHERE issue_id = $1",
            issue_id,
        )
    assert row is not None
    assert (row["n"], row["readers"]) == (1_000_000, 1_000_000)
    issue = await service.get(issue_id)
    assert (issue.recipients, issue.fanout_error) == (1_000_000, None)


async def test_get_issue_and_list_issues_keep_the_same_columns(db: Database) -> None:
    """The two statements repeat one select list (queries.sql): both feed
    repository._issue, so a column added to one only must fail here, not in production."""
    async with db.connection() as conn:
        shapes = [
            [
                (a.name, a.type.name)
                for a in (await conn.prepare(repository.Q[name])).get_attributes()
            ]
            for name in ("get_issue", "list_issues")
        ]
    assert shapes[0] == shapes[1]
