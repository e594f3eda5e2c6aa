"""Emit domain events into the outbox, in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.db.types import rfc3339, utcnow
from app.events.models import Event
from app.ids import new_id


async def emit(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    *,
    agent_id: str | None = None,
    platform_id: str | None = None,
) -> Event:
    """Write the event row; the webhook fan-out delivers it after the transaction commits."""
    event = Event(
        id=new_id("evt"),
        type=event_type,
        agent_id=agent_id,
        platform_id=platform_id,
        data=data,
        created_at=utcnow(),
    )
    session.add(event)
    return event


def envelope(event: Event) -> dict[str, Any]:
    return {"type": event.type, "timestamp": rfc3339(event.created_at), "data": event.data}
