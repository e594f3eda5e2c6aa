"""Every event the app writes to its outbox fits its documented webhook shape."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from app.db.engine import create_engine, session_factory
from app.db.models.events import Event
from app.db.types import utcnow
from app.settings import Settings
from app.webhooks import disabling
from tests.factories import (
    create_key,
    create_platform_agent,
    key_headers,
    master_headers,
    register_agent,
    unique,
)
from tests.webhooks.conftest import create_endpoint, new_platform
from webhooks.events import build_envelope, decode_envelope


@pytest.fixture
async def sessions(wh_settings: Settings) -> AsyncIterator[async_sessionmaker[AsyncSession]]:
    engine = create_engine(wh_settings)
    yield session_factory(engine)
    await engine.dispose()


async def test_every_event_the_app_emits_validates_against_the_catalog(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Given every emitter exercised through the API
    started = utcnow()
    agent = await register_agent(api)  # agent.registered, key.created
    signup = await api.post("/v1/keys", json={"email": f"{unique()}@example.com"})
    assert signup.status_code == 201, signup.text
    extra = await create_key(api, agent["apiKey"])  # key.created
    regenerated = await api.post(f"/v1/api-keys/{extra['id']}/regenerate",
                                 json={"gracePeriodSeconds": 60},
                                 headers=key_headers(agent["apiKey"]))  # key.rotated
    assert regenerated.status_code in (200, 201), regenerated.text
    revoked = await api.delete(f"/v1/api-keys/{extra['id']}",
                               headers=key_headers(agent["apiKey"]))  # key.revoked
    assert revoked.status_code == 200, revoked.text
    platform = await new_platform(api, admin_headers)  # key.created (master)
    fleet = await create_platform_agent(api, platform["key"])
    rotated = await api.post(f"/v1/platform/agents/{fleet['agent']['id']}/rotate-key",
                             headers=master_headers(platform["key"]))
    assert rotated.status_code == 200, rotated.text
    adjusted = await api.post("/admin/v1/credits/adjustments", headers=admin_headers, json={
        "agentId": fleet["agent"]["id"], "amountMicros": 2_500_000, "reason": "goodwill"})
    assert adjusted.status_code == 201, adjusted.text  # credits.deposited
    endpoint = await create_endpoint(api, platform["key"], "http://127.0.0.1:9/hook")
    tested = await api.post(f"/v1/platform/webhooks/{endpoint['id']}/test",
                            headers=master_headers(platform["key"]))  # webhook.test
    assert tested.status_code == 202, tested.text
    async with sessions() as session:  # webhook.endpoint_disabled
        assert await disabling.disable_endpoint(session, endpoint["id"], "gone", utcnow())
        await session.commit()

    # When the outbox is read back (this test's events and any other test's in this database)
    async with sessions() as session:
        events = (await session.exec(select(Event).order_by(col(Event.id)))).all()

    # Then each one builds a valid envelope that decodes to its typed shape
    assert events
    for event in events:
        body = build_envelope(event.type, event.data, timestamp=event.created_at)
        assert decode_envelope(body).type == event.type
    mine = [e for e in events if e.created_at >= started]
    assert {e.type for e in mine} >= {
        "agent.registered", "key.created", "key.rotated", "key.revoked", "credits.deposited",
        "webhook.test", "webhook.endpoint_disabled",
    }


async def test_an_agents_events_carry_its_platform(
    api: AsyncTestClient[Litestar], admin_headers: dict[str, str],
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # Given a fleet agent credited by the operator (the emitter names only the agent)
    platform = await new_platform(api, admin_headers)
    fleet = await create_platform_agent(api, platform["key"])
    response = await api.post("/admin/v1/credits/adjustments", headers=admin_headers, json={
        "agentId": fleet["agent"]["id"], "amountMicros": 1_000_000, "reason": "top-up"})
    assert response.status_code == 201, response.text

    async with sessions() as session:
        events = (await session.exec(
            select(Event).where(col(Event.agent_id) == fleet["agent"]["id"])
        )).all()

    # Then every event of that agent is routed to its platform
    assert {e.type for e in events} >= {"agent.registered", "key.created", "credits.deposited"}
    assert {e.platform_id for e in events} == {platform["id"]}
    deposit = next(e for e in events if e.type == "credits.deposited")
    assert deposit.data["amountMicros"] == 1_000_000
