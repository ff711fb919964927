"""Deliverability metrics, counted where the recorder stores events. Labels are bounded:
provider and kind names (``domain.Provider``, ``domain.EventKind``), suppression reasons."""

from __future__ import annotations

from prometheus_client import Counter

EVENTS = Counter(
    "herald_deliverability_events_total",
    "Provider events stored (a replay is not counted again), by provider and kind.",
    ["provider", "kind"],
)
BLOCKED = Counter(
    "herald_deliverability_blocked_total",
    "Messages refused because of the sender (reputation, content, a block list), by "
    "provider: never the reader's fault, never a suppression. Alert on any increase.",
    ["provider"],
)
REPLAYS = Counter(
    "herald_deliverability_replays_total",
    "Provider events received again (the same provider event id): stored once, ignored.",
    ["provider"],
)
SUPPRESSIONS = Counter(
    "herald_deliverability_suppressions_total",
    "Addresses the deliverability policy put on the suppression list, by reason.",
    ["reason"],
)
