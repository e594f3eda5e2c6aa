"""The outbox seam: after a transaction that emitted events commits, tell the fan-out.

Whoever builds sessions (the API runtime, the worker context) puts an :class:`OutboxDispatcher`
on ``session.info`` under :data:`OUTBOX_DISPATCHER`. :func:`schedule_dispatch` collects the ids
of the events written in the transaction and hands them over once it commits. Without a
dispatcher (a tool, a test session) nothing is sent and the sweeper fans the events out later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlmodel.ext.asyncio.session import AsyncSession

from app.db.hooks import after_commit

OUTBOX_DISPATCHER = "outbox_dispatcher"
_PENDING = "outbox_pending_events"


class OutboxDispatcher(Protocol):
    async def dispatch_events(self, event_ids: Sequence[str]) -> None:
        """Start delivering committed events; must not raise (log instead)."""


def schedule_dispatch(session: AsyncSession, event_id: str) -> None:
    """Dispatch ``event_id`` after the current transaction commits (one batch per commit)."""
    dispatcher: OutboxDispatcher | None = session.info.get(OUTBOX_DISPATCHER)
    if dispatcher is None:
        return
    pending: list[str] | None = session.info.get(_PENDING)
    if pending is None:
        pending = []
        session.info[_PENDING] = pending

        async def flush() -> None:
            ids = session.info.pop(_PENDING, [])
            if ids:
                await dispatcher.dispatch_events(ids)

        after_commit(session, flush)
    pending.append(event_id)


def discard_pending(session: AsyncSession) -> None:
    """Forget the events of a transaction that was rolled back."""
    session.info.pop(_PENDING, None)
