"""Emit domain events into the outbox, in the caller's transaction."""

from __future__ import annotations

from datetime import datetime

import msgspec

from app.db.models.agents import Agent
from app.db.models.events import Event
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.ids import new_id
from webhooks.events import EVENT_TYPE_OF, EventData


async def emit(
    session: UnitOfWork,
    data: EventData,
    *,
    agent_id: str | None = None,
    platform_id: str | None = None,
    fan_out: bool = True,
) -> Event:
    """Write the event row; the webhook fan-out delivers it after the transaction commits.

    ``data`` is one of the event shapes of ``webhooks.events``, which names the event type; it
    is checked here, so a wrong payload fails in the transaction that emits it rather than later
    in a worker. Times are written to the second, as every passgate timestamp. An agent's event
    reaches its platform's endpoints: without an explicit ``platform_id`` the agent's current
    platform is recorded. ``fan_out=False`` records an event that is delivered by other means (a
    test send to one endpoint), so the fan-out never picks it up.
    """
    event_type = EVENT_TYPE_OF[type(data)]
    payload = msgspec.to_builtins(_to_the_second(data))
    msgspec.convert(payload, type(data))  # types, not only field names: raises ValidationError
    if platform_id is None and agent_id is not None:
        agent = await session.get(Agent, agent_id)
        platform_id = agent.platform_id if agent is not None else None
    now = utcnow()
    event = Event(
        id=new_id("evt"),
        type=event_type.value,
        agent_id=agent_id,
        platform_id=platform_id,
        data=payload,
        created_at=now,
        dispatched_at=None if fan_out else now,
    )
    session.add(event)
    if fan_out:
        session.dispatch_events(event.id)
    return event


def _to_the_second(data: EventData) -> EventData:
    changes = {
        field.name: value.replace(microsecond=0)
        for field in msgspec.structs.fields(data)
        if isinstance(value := getattr(data, field.name), datetime)
    }
    return msgspec.structs.replace(data, **changes) if changes else data
