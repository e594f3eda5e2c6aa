"""What the broker lost, found again in the tables: events left undispatched and pending
messages overdue by the grace period and leased by nobody (a killed worker's lease runs out).

This is what makes a Redis flush or a killed worker lose nothing: every piece of work is a row.
Work parked for an operator (:mod:`app.attention`) is left alone.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import or_, select, update

from app.attention.filters import not_parked
from app.db.models.attention import WEBHOOK_EVENT, WEBHOOK_MESSAGE
from app.db.models.webhooks import PENDING
from app.db.uow import UnitOfWork
from app.webhooks.options import WebhookOptions
from app.webhooks.tables import EVENTS as _EV
from app.webhooks.tables import MESSAGES as _M
from app.webhooks.tasks import schedule_deliveries


async def stale_events(session: UnitOfWork, now: datetime, options: WebhookOptions) -> list[str]:
    """Events still undispatched after the grace period (their job was lost), except those
    parked for an operator; the sweeper fans each out in a transaction of its own."""
    cutoff = now - options.sweep_grace
    ids = (
        await session.execute(
            select(_EV.c.id)
            .where(_EV.c.dispatched_at.is_(None), _EV.c.created_at <= cutoff,
                   not_parked(WEBHOOK_EVENT, _EV.c.id))
            .order_by(_EV.c.id)
            .limit(options.sweep_batch)
        )
    ).scalars().all()
    return list(ids)


async def redrive_due(session: UnitOfWork, now: datetime, options: WebhookOptions) -> int:
    """Re-send deliver jobs for pending messages overdue by the grace period and unleased.

    ``redriven_at`` keeps a backlog that the workers are merely slow to drain from being
    re-sent more than once per grace period.
    """
    cutoff = now - options.sweep_grace
    candidates = (
        await session.execute(
            select(_M.c.id)
            .where(
                _M.c.status == PENDING,
                _M.c.next_attempt_at <= cutoff,
                or_(_M.c.locked_until.is_(None),
                    _M.c.locked_until <= now),
                or_(_M.c.redriven_at.is_(None),
                    _M.c.redriven_at <= cutoff),
                not_parked(WEBHOOK_MESSAGE, _M.c.id),
            )
            .order_by(_M.c.next_attempt_at)
            .limit(options.sweep_batch)
        )
    ).scalars().all()
    if not candidates:
        return 0
    await session.execute(
        update(_M)
        .where(_M.c.id.in_(list(candidates)))
        .values(redriven_at=now)
    )
    schedule_deliveries(session, [(message_id, None) for message_id in candidates])
    return len(candidates)
