"""The settlement actor's address (kept import-light: the scheduler and the API load it)."""

from __future__ import annotations

from app.jobs import Job

SETTLE_QUEUE = "settlement"
SETTLE_ACTOR = "settlement_settle"


def settle_job(submission_id: str, delay_seconds: float | None = None) -> Job:
    delay = int(delay_seconds * 1000) if delay_seconds and delay_seconds > 0 else None
    return Job(SETTLE_QUEUE, SETTLE_ACTOR, (submission_id,), delay)
