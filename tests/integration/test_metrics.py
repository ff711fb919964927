"""Prometheus metrics: bounded labels, parseable output, gauges computed by one process."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
from prometheus_client import REGISTRY, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from herald.composition.metrics import GAUGE_LOCK_KEY, reset_all, run_gauges
from herald.core.config import Settings
from herald.core.db import Database, connect, try_advisory_lock
from herald.core.metrics import start_metrics_server
from herald.delivery import metrics as delivery_metrics
from herald.issues import metrics as issue_metrics
from herald.issues.domain import IssueContent
from herald.issues.service import IssueService
from tests.support.metrics import Samples, parse_samples
from tests.support.newsletters import add_subscribers, publish_now
from tests.support.queue import wait_until


def scrape() -> Samples:
    """Every sample the process registry exports."""
    return parse_samples(generate_latest(REGISTRY).decode())


def series(name: str) -> set[tuple[tuple[str, str], ...]]:
    return {tuple(sorted(labels.items())) for labels, _ in scrape().get(name, [])}


@pytest.mark.slow
@pytest.mark.timeout(600)  # 10 s alone; several times that on a loaded machine
async def test_ten_thousand_distinct_urls_make_a_bounded_number_of_series(
    client: httpx.AsyncClient,
) -> None:
    before = series("http_server_request_duration_seconds_count")
    semaphore = asyncio.Semaphore(8)  # within the pool: no 503s from waiting for it

    async def get(path: str) -> None:
        async with semaphore:
            await client.get(path)

    paths = [f"/no/such/page/{uuid.uuid4()}" for _ in range(5_000)]
    paths += [f"/admin/issues/{uuid.uuid4()}" for _ in range(4_000)]  # one route template
    paths += [f"/subscriptions/confirm?subscription_token={uuid.uuid4().hex}" for _ in range(1_000)]
    await asyncio.gather(*(get(path) for path in paths))

    after = series("http_server_request_duration_seconds_count")
    new = after - before
    # A few (route, status class) pairs — whatever the statuses under load — never one
    # per URL.
    assert len(new) <= 10, new
    routes = {dict(labels)["route"] for labels in after}
    assert "<unmatched>" in routes
    assert "/admin/issues/{issue_id}" in routes
    assert not any("no/such" in route for route in routes)
    # Summed over the route's series: the registry is the process's, so earlier tests
    # may have left another (status class) series of the same route.
    counts: dict[str, float] = {}
    for labels, value in scrape()["http_server_request_duration_seconds_count"]:
        if labels["method"] == "GET":
            counts[labels["route"]] = counts.get(labels["route"], 0.0) + value
    assert counts["<unmatched>"] >= 5_000


async def test_the_listener_serves_text_that_prometheus_parses(client: httpx.AsyncClient) -> None:
    await client.get("/health/live")
    server = start_metrics_server("127.0.0.1", 0)
    try:
        async with httpx.AsyncClient() as http:
            response = await http.get(f"http://127.0.0.1:{server.port}/metrics")
    finally:
        server.close()
    assert response.status_code == 200
    names = {family.name for family in text_string_to_metric_families(response.text)}
    assert {
        "http_server_request_duration_seconds",
        "http_server_active_requests",
        "herald_db_pool_connections",
        "herald_db_pool_waiting",
        "herald_delivery_outcomes",
        "herald_queue_oldest_ready_age_seconds",
    } <= names


async def test_gauges_show_the_queue_and_issues(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO deliveries (kind, recipient, message, status, max_attempts, "
            "available_at) VALUES ('confirmation', 'a@example.com', '{}'::jsonb, 'queued', 8, "
            "now() - interval '90 seconds')"
        )
        await delivery_metrics.refresh_gauges(conn)
        await issue_metrics.refresh_gauges(conn)
    samples = scrape()
    [(_, age)] = samples["herald_queue_oldest_ready_age_seconds"]
    assert 90 <= age < 600
    queued = {labels["status"]: value for labels, value in samples["herald_deliveries"]}
    assert queued["queued"] >= 1
    issues = {labels["status"] for labels, _ in samples["herald_issues"]}
    assert issues == {"draft", "scheduled", "publishing", "sent"}


async def test_one_process_holds_the_gauge_lock_and_another_takes_over(
    database_url: str, settings: Settings
) -> None:
    first = await connect(database_url, settings.db)
    second = await connect(database_url, settings.db)
    try:
        assert await try_advisory_lock(first, GAUGE_LOCK_KEY)
        assert not await try_advisory_lock(second, GAUGE_LOCK_KEY)
        await first.close()  # the leader's process died with its connection
        await wait_until(lambda: try_advisory_lock(second, GAUGE_LOCK_KEY), timeout=10)
    finally:
        for conn in (first, second):
            if not conn.is_closed():
                await conn.close()


async def test_the_gauge_loop_refreshes_on_its_timer(database_url: str, settings: Settings) -> None:
    quick = settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"gauge_interval_seconds": 0.05})}
    )
    delivery_metrics.OLDEST_READY_AGE.set(-1)
    stop = asyncio.Event()
    loop = asyncio.create_task(run_gauges(database_url, quick, stop))
    try:
        await wait_until(lambda: delivery_metrics.OLDEST_READY_AGE._value.get() >= 0, timeout=10)
    finally:
        stop.set()
        await loop


async def lock_waiters(db: Database) -> bool:
    async with db.connection() as conn:
        waiting = await conn.fetchval(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        )
    return bool(waiting)


async def test_a_process_that_loses_the_gauge_lock_stops_exporting_its_values(
    database_url: str, settings: Settings, db: Database
) -> None:
    # A stale leader's last queue age would win every max() and fire the queue alert.
    quick = settings.model_copy(
        update={"metrics": settings.metrics.model_copy(update={"gauge_interval_seconds": 0.05})}
    )
    reset_all()  # values of earlier tests in this process are not this loop's
    stop = asyncio.Event()
    loop = asyncio.create_task(run_gauges(database_url, quick, stop))
    other = await connect(database_url, settings.db)
    try:
        await wait_until(lambda: bool(delivery_metrics.DELIVERIES._metrics), timeout=10)
        delivery_metrics.OLDEST_READY_AGE.set(999)  # as if the queue had been stuck
        # Another process queues for the lock (a waiter is granted it the moment the
        # holder goes, before the loop's new session can try again) ...
        waiting = asyncio.create_task(
            other.execute("SELECT pg_advisory_lock($1::bigint)", GAUGE_LOCK_KEY)
        )
        await wait_until(lambda: lock_waiters(db), timeout=10)
        async with db.connection() as conn:  # ... and the leader's connection breaks.
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE application_name = 'herald-metrics' AND datname = current_database()"
            )
        await asyncio.wait_for(waiting, timeout=10)
        await wait_until(lambda: not delivery_metrics.DELIVERIES._metrics, timeout=10)
        assert delivery_metrics.OLDEST_READY_AGE._value.get() == 0
        await other.close()  # that one goes too: this process is elected again
        await wait_until(lambda: bool(delivery_metrics.DELIVERIES._metrics), timeout=10)
    finally:
        stop.set()
        await loop
        if not other.is_closed():
            await other.close()


async def test_the_send_in_progress_is_counted_by_delivery_status(
    db: Database, settings: Settings
) -> None:
    await add_subscribers(db, 5)
    service = IssueService(db, settings)
    sending = await service.create_draft(IssueContent.parse(title="Now", text_content="x"), None)
    await publish_now(service, sending)
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE deliveries SET status = 'sent', sent_at = now() WHERE id IN"
            " (SELECT id FROM deliveries WHERE issue_id = $1 ORDER BY id LIMIT 2)",
            sending,
        )
        await conn.execute(
            "UPDATE deliveries SET status = 'failed', last_error = 'bounced' WHERE id ="
            " (SELECT id FROM deliveries WHERE issue_id = $1 AND status = 'queued'"
            "  ORDER BY id LIMIT 1)",
            sending,
        )
        await issue_metrics.refresh_gauges(conn)
    counts = {
        labels["status"]: value for labels, value in scrape()["herald_publishing_issue_deliveries"]
    }
    assert counts == {"queued": 2, "sending": 0, "sent": 2, "failed": 1, "suppressed": 0}
