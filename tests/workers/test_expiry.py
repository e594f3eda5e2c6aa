"""Scheduled expiry of time-limited keys, through the actor the scheduler sends."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlmodel import col, select

from app.db.engine import create_engine, session_factory
from app.db.models.events import Event
from tests.factories import key_headers, register_agent
from workers.expiry import expire_keys


async def _events_for(settings, key_id: str) -> list[Event]:
    engine = create_engine(settings)
    try:
        async with session_factory(engine)() as session:
            rows = await session.exec(select(Event).where(col(Event.type) == "key.expired"))
            return [e for e in rows.all() if e.data.get("keyId") == key_id]
    finally:
        await engine.dispose()


async def test_an_expired_key_is_refused_at_once_then_marked_and_announced(
    client, admin_headers, settings, actor_runner
):
    agent = await register_agent(client)
    soon = (datetime.now(UTC) + timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    created = await client.post("/v1/api-keys", json={"label": "short", "expiresAt": soon},
                                headers=key_headers(agent["apiKey"]))
    key = created.json()
    await asyncio.sleep(1.3)

    refused = await client.get("/v1/api-keys/info", headers=key_headers(key["key"]))
    before = (await client.get(f"/admin/v1/keys/{key['id']}", headers=admin_headers)).json()
    await actor_runner(expire_keys)
    await actor_runner(expire_keys)  # a second run changes nothing
    after = (await client.get(f"/admin/v1/keys/{key['id']}", headers=admin_headers)).json()
    events = await _events_for(settings, key["id"])

    assert created.status_code == 201, created.text
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]
    assert before["status"] == "active"
    assert after["status"] == "expired"
    assert len(events) == 1
    assert events[0].data["keyType"] == "personal"
