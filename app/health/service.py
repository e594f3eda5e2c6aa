"""The background's traces in the database: job heartbeats, and the oldest work still open.

Workers write heartbeats (``record_run``); ``/v1/health`` reads them with the oldest unsettled
payment and the oldest undelivered webhook, each one indexed query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from app.db.models.events import Event
from app.db.models.health import JobHeartbeat
from app.db.models.payments import Payment
from app.db.models.webhooks import PENDING, WebhookMessage
from app.db.types import utcnow
from app.db.uow import UnitOfWork

UNSETTLED = ("pending", "submitted")


@dataclass(frozen=True, slots=True)
class JobRun:
    """One finished run of a periodic job, as its worker saw it."""

    job: str
    queue: str
    every_seconds: float
    sent_at: datetime
    finished_at: datetime
    queue_delay_ms: int
    error: str | None = None


def _insert(session: UnitOfWork) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(JobHeartbeat)


async def record_run(session: UnitOfWork, run: JobRun) -> None:
    """Upsert the job's row: one statement, safe with any number of workers at once."""
    common: dict[str, Any] = {
        "queue": run.queue, "every_seconds": run.every_seconds, "last_sent_at": run.sent_at,
        "updated_at": run.finished_at,
    }
    if run.error is None:
        outcome: dict[str, Any] = {"last_success_at": run.finished_at,
                                   "last_queue_delay_ms": run.queue_delay_ms}
    else:
        outcome = {"last_failure_at": run.finished_at, "last_error": run.error[:200]}
    stmt = _insert(session).values(job=run.job, **common, **outcome)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["job"], set_={**common, **outcome})
    )


async def heartbeats(session: UnitOfWork) -> list[JobHeartbeat]:
    return list((await session.exec(select(JobHeartbeat).order_by(col(JobHeartbeat.job)))).all())


@dataclass(frozen=True, slots=True)
class Oldest:
    id: str
    status: str
    created_at: datetime

    def age_seconds(self, now: datetime | None = None) -> float:
        return max(0.0, ((now or utcnow()) - self.created_at).total_seconds())


async def oldest_unsettled_payment(session: UnitOfWork) -> Oldest | None:
    """The oldest payment still ``pending`` or ``submitted`` (ids sort by creation time)."""
    first = await session.scalar(
        select(func.min(Payment.id)).where(col(Payment.status).in_(UNSETTLED))
    )
    if first is None:
        return None
    payment = await session.get(Payment, first)
    return None if payment is None else Oldest(payment.id, payment.status, payment.created_at)


async def oldest_undelivered_webhook(session: UnitOfWork) -> Oldest | None:
    """The oldest message still to deliver, or an event not yet fanned out if older."""
    found: list[Oldest] = []
    message_id = await session.scalar(
        select(func.min(WebhookMessage.id)).where(col(WebhookMessage.status) == PENDING)
    )
    if message_id is not None:
        message = await session.get(WebhookMessage, message_id)
        if message is not None:
            found.append(Oldest(message.id, "pending", message.created_at))
    event_id = await session.scalar(
        select(func.min(Event.id)).where(col(Event.dispatched_at).is_(None))
    )
    if event_id is not None:
        event = await session.get(Event, event_id)
        if event is not None:
            found.append(Oldest(event.id, "not_fanned_out", event.created_at))
    return min(found, key=lambda item: item.created_at, default=None)
