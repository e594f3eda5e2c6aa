"""The webhook actors' addresses, the jobs sent to them, and the outbox dispatcher that feeds
the fan-out.

The actors live in ``workers/webhooks.py``; the API reaches them by name through a
:class:`~app.jobs.JobQueue` so it never imports worker code.
"""

from __future__ import annotations

from collections.abc import Sequence

from app.db.uow import UnitOfWork
from app.jobs import Job, JobQueue

QUEUE = "webhooks"
SWEEP_QUEUE = "webhooks_sweep"
FAN_OUT = "webhook_fan_out"
DELIVER = "webhook_deliver"
SWEEP = "webhook_sweep"

# While a fan-out job is queued and not started, committing more events sends no more jobs:
# that job takes every waiting event (in batches). The flag expires if the job is lost.
FAN_OUT_PENDING = "webhook_fan_out"
FAN_OUT_PENDING_TTL_MS = 5_000

# Dramatiq refuses delays of 7 days or more; nothing in webhooks waits that long.
_MAX_DELAY_MS = 6 * 86_400_000


def fan_out_job(event_id: str) -> Job:
    return Job(QUEUE, FAN_OUT, (event_id,))


def deliver_job(message_id: str, delay_seconds: float | None = None) -> Job:
    delay = None
    if delay_seconds is not None and delay_seconds > 0:
        delay = min(int(delay_seconds * 1000), _MAX_DELAY_MS)
    return Job(QUEUE, DELIVER, (message_id,), delay)


def schedule_deliveries(
    session: UnitOfWork, scheduled: Sequence[tuple[str, float | None]]
) -> None:
    """Enqueue ``(message id, delay seconds)`` deliver jobs once the transaction commits."""
    session.enqueue(*(deliver_job(message_id, delay) for message_id, delay in scheduled))


class WebhookOutbox:
    """The units of work's :class:`~app.db.uow.EventSink` in the API and the workers."""

    def __init__(self, jobs: JobQueue) -> None:
        self.jobs = jobs

    async def dispatch_events(self, event_ids: Sequence[str]) -> None:
        """One fan-out job for the committed events, unless one is already waiting (it will
        take these too); the sweeper covers a job the broker loses."""
        if event_ids:
            await self.jobs.send_unless_pending(
                fan_out_job(event_ids[0]), FAN_OUT_PENDING, FAN_OUT_PENDING_TTL_MS
            )
