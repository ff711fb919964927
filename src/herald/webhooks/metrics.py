"""Outgoing webhook metrics, counted where they happen (the sender)."""

from __future__ import annotations

from prometheus_client import Counter

ATTEMPTS = Counter(
    "herald_webhook_attempts_total",
    "Webhook delivery attempts by outcome: delivered (2xx), retry (will be tried again), "
    "failed (attempts used up).",
    ["outcome"],
)
DISABLED = Counter(
    "herald_webhook_endpoints_disabled_total",
    "Webhook endpoints disabled by Herald because every attempt kept failing (alert on it).",
)
