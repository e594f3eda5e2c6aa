"""What health and the state metrics read from the tables, and the job heartbeats workers
write: each one indexed query."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import col, select

from app.db.models.events import Event
from app.db.models.gateway import LEASE_OPEN, CreditLease
from app.db.models.health import JobHeartbeat
from app.db.models.payments import Payment
from app.db.models.signer import OPEN_STATUSES, SettlementSubmission
from app.db.models.webhooks import PENDING, WebhookMessage
from app.db.types import utcnow
from app.db.uow import UnitOfWork

UNSETTLED = ("pending", "submitted")


@dataclass(frozen=True, slots=True)
class Oldest:
    id: str
    status: str
    created_at: datetime

    def age_seconds(self, now: datetime | None = None) -> float:
        return max(0.0, ((now or utcnow()) - self.created_at).total_seconds())


def _insert(session: UnitOfWork) -> Any:
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(JobHeartbeat)


async def upsert_heartbeat(
    session: UnitOfWork, job: str, common: dict[str, Any], outcome: dict[str, Any]
) -> None:
    """One statement, safe with any number of workers at once."""
    stmt = _insert(session).values(job=job, **common, **outcome)
    await session.execute(
        stmt.on_conflict_do_update(index_elements=["job"], set_={**common, **outcome})
    )


async def heartbeats(session: UnitOfWork) -> list[JobHeartbeat]:
    return list((await session.exec(select(JobHeartbeat).order_by(col(JobHeartbeat.job)))).all())


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


# -- for the state metrics ---------------------------------------------------------------------


async def payments_by_status(session: UnitOfWork) -> list[tuple[str, str, str, int]]:
    """``(status, scheme, network, count)`` of every payment."""
    rows = await session.execute(
        select(col(Payment.status), col(Payment.scheme), col(Payment.network), func.count())
        .group_by(col(Payment.status), col(Payment.scheme), col(Payment.network))
    )
    return [(status, scheme, network, count) for status, scheme, network, count in rows.all()]


async def oldest_unsettled_at(session: UnitOfWork) -> datetime | None:
    found: datetime | None = await session.scalar(
        select(func.min(Payment.created_at)).where(col(Payment.status).in_(UNSETTLED))
    )
    return found


async def pending_messages(session: UnitOfWork) -> tuple[int, datetime | None]:
    """How many webhook messages are pending, and when the oldest was created."""
    count, oldest = (await session.execute(
        select(func.count(), func.min(WebhookMessage.created_at))
        .where(col(WebhookMessage.status) == PENDING)
    )).one()
    return count, oldest


async def undispatched_events(session: UnitOfWork) -> int:
    found = await session.scalar(
        select(func.count()).select_from(Event).where(col(Event.dispatched_at).is_(None))
    )
    return found or 0


async def open_settlements(session: UnitOfWork) -> tuple[int, datetime | None]:
    """How many settlement submissions are unfinished, and when the oldest was created."""
    count, oldest = (await session.execute(
        select(func.count(), func.min(SettlementSubmission.created_at))
        .where(col(SettlementSubmission.status).in_(OPEN_STATUSES))
    )).one()
    return count, oldest


async def open_leases(session: UnitOfWork) -> tuple[int, int, datetime | None]:
    """How many gateway credit leases are open, the micros they hold (as the agents' held
    balances show them), and the earliest expiry among them."""
    count, held, first_expiry = (await session.execute(
        select(func.count(),
               func.coalesce(func.sum(CreditLease.amount_micros), 0),
               func.min(CreditLease.expires_at))
        .where(col(CreditLease.state) == LEASE_OPEN)
    )).one()
    return count, int(held), first_expiry
