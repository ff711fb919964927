"""What a worker process runs: the delivery worker with the features' plug-ins (issue
rendering and completion; the deliverability policy hearing the relay's refusals), the
scheduler loop, the job runner, the outgoing webhooks'
sender and the default-list backfill check, each a task until ``stop`` is set."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from herald.core.config import Settings
from herald.core.db import Database

if TYPE_CHECKING:
    from herald.deliverability.service import EventRecorder
    from herald.delivery.batch import Renderer
    from herald.email.message import EmailProvider
    from herald.issues.delivery import IssueDeliveries
    from herald.jobs.runner import JobHandler


def start_worker(
    settings: Settings,
    db: Database,
    listen_dsn: str,
    stop: asyncio.Event,
    concurrency: int | None,
    tasks: list[asyncio.Task[None]],
) -> EmailProvider:
    """The delivery worker and the scheduler loop, as tasks; returns the provider."""
    from herald.deliverability.refusals import RefusalRecorder
    from herald.delivery.worker import DeliveryWorker
    from herald.email.factory import build_provider
    from herald.issues.delivery import IssueDeliveries, run_scheduler
    from herald.jobs.runner import JobRunner
    from herald.subscriptions.backfill import enqueue_at_start
    from herald.webhooks.sender import WebhookSender

    delivery = settings.delivery
    if concurrency:
        delivery = delivery.model_copy(update={"concurrency": concurrency})
    provider = build_provider(settings, db)
    issue_deliveries = IssueDeliveries(db, settings)
    runner = DeliveryWorker(
        db,
        provider,
        delivery,
        dsn=listen_dsn,
        db_settings=settings.db,
        renderers=delivery_renderers(db, settings, issue_deliveries),
        after_batch=issue_deliveries.after_batch,
        on_refused=RefusalRecorder(event_recorder(db, settings)).record,
    )
    scheduler_wake = asyncio.Event()
    runner.add_wakeup(scheduler_wake)
    tasks.append(asyncio.create_task(runner.run(stop), name="worker"))
    tasks.append(
        asyncio.create_task(
            run_scheduler(db, settings, stop, wake=scheduler_wake), name="scheduler"
        )
    )
    jobs = JobRunner(db, job_handlers(settings), lease_seconds=delivery.lease_seconds)
    tasks.append(asyncio.create_task(jobs.run(stop), name="jobs"))
    webhooks = WebhookSender(db, settings.webhooks)
    tasks.append(asyncio.create_task(webhooks.run(stop), name="webhooks"))
    # Migration 0018's default-list backfill: enqueued once, by whichever worker checks first.
    tasks.append(asyncio.create_task(enqueue_at_start(db), name="backfill-check"))
    return provider


def delivery_renderers(
    db: Database, settings: Settings, issues: IssueDeliveries | None = None
) -> dict[str, Renderer]:
    """The worker's renderer per delivery kind: issues rendered per reader, welcomes sent
    as stored to readers still confirmed; any other kind is sent as stored."""
    from herald.delivery.domain import DeliveryKind
    from herald.issues.delivery import IssueDeliveries
    from herald.welcomes.delivery import WelcomeDeliveries

    issues = issues if issues is not None else IssueDeliveries(db, settings)
    return {
        DeliveryKind.ISSUE: issues.render,
        DeliveryKind.WELCOME: WelcomeDeliveries(db).render,
    }


def job_handlers(settings: Settings) -> dict[str, JobHandler]:
    """Every kind of background job a worker runs."""
    from herald.imports import job as imports
    from herald.subscriptions import backfill, bulk

    return {
        bulk.KIND: bulk.BulkActionJob(settings),
        backfill.KIND: backfill.DefaultListBackfill(),
        imports.KIND: imports.ImportJob(settings),
    }


def event_recorder(db: Database, settings: Settings) -> EventRecorder:
    """The deliverability recorder under the configured policy."""
    from herald.deliverability.policy import configured
    from herald.deliverability.service import EventRecorder

    return EventRecorder(db, configured(settings.deliverability))
