"""``/metrics`` of real processes: ``serve --workers 2`` (one listener for both, in the
supervisor) and a ``worker``; never on the public port."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from tests.e2e.test_newcomer import wait_ready
from tests.support.database import free_port
from tests.support.metrics import Samples, parse_samples, total
from tests.support.processes import herald_env, herald_process, wait_exit
from tests.support.queue import wait_until


async def scrape(port: int) -> Samples:
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    return parse_samples(response.text)


async def test_serve_workers_and_worker_export_metrics(database_url: str, tmp_path: Path) -> None:
    port, serve_metrics, worker_metrics = free_port(), free_port(), free_port()
    base_url = f"http://127.0.0.1:{port}"
    common = {
        "HERALD_DATABASE_URL": database_url,
        "HERALD_PORT": str(port),
        "HERALD_METRICS__GAUGE_INTERVAL_SECONDS": "1",
    }
    serve_env = herald_env(**common, HERALD_METRICS__PORT=str(serve_metrics))
    worker_env = herald_env(**common, HERALD_METRICS__PORT=str(worker_metrics))
    async with (
        herald_process(
            "serve", "--workers", "2", env=serve_env, log_path=tmp_path / "s.log"
        ) as serve,
        herald_process("worker", env=worker_env, log_path=tmp_path / "w.log") as worker,
    ):
        await wait_ready(base_url)
        async with httpx.AsyncClient(base_url=base_url) as client:
            for n in range(6):
                response = await client.post(
                    "/subscriptions", json={"name": "M", "email": f"m{n}@example.com"}
                )
                assert response.status_code == 200
            assert (await client.get("/metrics")).status_code == 404  # not on the public port

        async def web_counted() -> bool:
            samples = await scrape(serve_metrics)
            posts = total(
                samples,
                "http_server_request_duration_seconds_count",
                method="POST",
                route="/subscriptions",
                status_class="2xx",
            )
            return posts == 6  # the sum over both web processes

        await wait_until(web_counted, timeout=30)

        async def worker_counted() -> bool:
            samples = await scrape(worker_metrics)
            sent = total(
                samples, "herald_delivery_outcomes_total", provider="outbox", outcome="sent"
            )
            return sent == 6

        await wait_until(worker_counted, timeout=60)

        async def gauges_computed() -> bool:
            # One process of the three computes the gauges; the queue is empty now.
            for port_ in (serve_metrics, worker_metrics):
                samples = await scrape(port_)
                if (
                    samples.get("herald_queue_oldest_ready_age_seconds")
                    and total(samples, "herald_issues", status="draft") == 0
                ):
                    queued = total(samples, "herald_deliveries", status="queued")
                    if queued == 0:
                        return True
            return False

        await wait_until(gauges_computed, timeout=30)
        pool = await scrape(serve_metrics)
        assert total(pool, "herald_db_pool_max_connections") >= 2  # both children's pools

        serve.send_signal(signal.SIGTERM)
        worker.send_signal(signal.SIGTERM)
        assert await wait_exit(serve, 30) == 0, (tmp_path / "s.log").read_text()
        assert await wait_exit(worker, 30) == 0, (tmp_path / "w.log").read_text()
