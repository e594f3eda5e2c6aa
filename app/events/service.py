"""Emit domain events into the outbox, in the caller's transaction."""

from __future__ import annotations

from typing import Any

from sqlmodel.ext.asyncio.session import AsyncSession

from app.db.models.agents import Agent
from app.db.models.events import Event
from app.db.types import rfc3339, utcnow
from app.events.dispatch import schedule_dispatch
from app.ids import new_id


async def emit(
    session: AsyncSession,
    event_type: str,
    data: dict[str, Any],
    *,
    agent_id: str | None = None,
    platform_id: str | None = None,
    fan_out: bool = True,
) -> Event:
    """Write the event row; the webhook fan-out delivers it after the transaction commits.

    ``data`` must match the event's shape in ``webhooks.events`` (camelCase keys). An agent's
    event reaches its platform's endpoints: without an explicit ``platform_id`` the agent's
    current platform is recorded. ``fan_out=False`` records an event that is delivered by other
    means (a test send to one endpoint), so the fan-out never picks it up.
    """
    if platform_id is None and agent_id is not None:
        agent = await session.get(Agent, agent_id)
        platform_id = agent.platform_id if agent is not None else None
    now = utcnow()
    event = Event(
        id=new_id("evt"),
        type=event_type,
        agent_id=agent_id,
        platform_id=platform_id,
        data=data,
        created_at=now,
        dispatched_at=None if fan_out else now,
    )
    session.add(event)
    if fan_out:
        schedule_dispatch(session, event.id)
    return event


def envelope(event: Event) -> dict[str, Any]:
    return {"type": event.type, "timestamp": rfc3339(event.created_at), "data": event.data}
