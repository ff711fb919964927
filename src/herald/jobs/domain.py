"""What a background job is: its kind, parameters, checkpoint and counts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class JobStatus(StrEnum):
    QUEUED = "queued"  # waiting for a runner (new, or released at a drain)
    RUNNING = "running"  # a runner holds its lease
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def open(self) -> bool:
        return self in (JobStatus.QUEUED, JobStatus.RUNNING)


@dataclass(frozen=True, slots=True)
class Job:
    id: uuid.UUID
    kind: str
    params: dict[str, Any]
    description: str
    status: JobStatus
    # The handler's checkpoint: where the next step starts (None: at the beginning).
    position: str | None
    done: int
    skipped: int
    total: int | None  # an estimate taken when it was started, when one is known
    message: str | None  # the outcome once finished (or why it failed)
    attempts: int
    created_at: datetime
    updated_at: datetime
    finished_at: datetime | None

    @property
    def percent(self) -> int | None:
        if not self.total:
            return None
        return min(100, round(100 * (self.done + self.skipped) / self.total))


@dataclass(frozen=True, slots=True)
class Step:
    """What one step of a job did: rows acted on, rows passed over, and the checkpoint
    the next step starts from (None: the job is finished). ``message``: the last step's
    outcome for people, when the handler knows better than its ``summary`` of the job."""

    done: int
    skipped: int
    position: str | None
    message: str | None = None
