"""A pass key dies at ``expiresAt``: refused at once, then marked and announced by the job."""

from __future__ import annotations

import asyncio

import pytest
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from app.config.plans import PassSettings
from app.db.engine import create_engine, session_factory
from app.db.models.events import Event
from app.main import create_app
from tests.fixtures.chain import encode_call, transact
from tests.fixtures.paid import chain_settings
from tests.fixtures.workers import actor_runner
from workers.expiry import expire_keys

__all__ = ["actor_runner"]


@pytest.fixture
def settings(settings_factory, devchain, pay_to):
    # Overrides the root ``settings`` so ``actor_runner`` works on this configuration too.
    short = PassSettings(period="1d", seconds=2, price_micros=1_000_000)
    return settings_factory(**chain_settings(devchain, pay_to), passes=[short])


async def test_a_pass_key_is_refused_after_expiry_then_marked_expired_with_an_event(
    settings, devchain, chain_client, pay_to, actor_runner, admin_headers
):
    tx = await transact(chain_client, devchain.accounts[1].address,
                        encode_call("transfer(address,uint256)", pay_to, 1_000_000))
    async with AsyncTestClient(app=create_app(settings)) as api:
        bought = await api.post("/v1/passes/1d",
                                headers={"X-Payment": tx, "X-Payment-Chain": "local"})
        key = bought.json()["data"]["apiKey"]
        works = await api.get("/v1/api-keys/info", headers={"X-API-Key": key})
        await asyncio.sleep(2.2)
        refused = await api.get("/v1/api-keys/info", headers={"X-API-Key": key})
        key_id = works.json()["id"]
        await actor_runner(expire_keys)
        marked = await api.get(f"/admin/v1/keys/{key_id}", headers=admin_headers)

    engine = create_engine(settings)
    async with session_factory(engine)() as session:
        events = (await session.exec(select(Event).where(col(Event.type) == "key.expired"))).all()
    await engine.dispose()
    assert bought.status_code == 201, bought.text
    assert works.status_code == 200
    assert refused.status_code == 401
    assert "expired" in refused.json()["error"]
    assert marked.json()["status"] == "expired"
    assert [e.data["keyType"] for e in events if e.data["keyId"] == key_id] == ["x402"]
