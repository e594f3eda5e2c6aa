"""An abandoned reservation (kind ``gateway_reservation``) or credit lease (``gateway_lease``)
that cannot be given back is parked for an operator after a bounded number of sweeps, while the
others are (``gateway_release_stale``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlalchemy import delete, update
from sqlmodel import col

from app.credits.limits import MAX_BALANCE_MICROS
from app.db.models.attention import AttentionItem
from app.db.models.gateway import CreditLease, GatewayUsage
from app.db.types import utcnow
from app.runtime import Runtime
from tests.conftest import ADMIN_TOKEN
from tests.factories import key_headers
from tests.fixtures.workers import running_actors
from tests.gateway.helpers import PRICE, balance, database, settled_usage, signup, usage
from tests.gateway.test_leases import leases_of, recorded
from workers.gateway import release_stale

LIMIT = 3
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
STARTER = 10_000_000


async def _abandon(sessions: Any, usage_id: str, **values: Any) -> None:
    """As if the process died mid-call: the call's row pending, an hour old."""
    async with sessions() as session:
        await session.execute(
            update(GatewayUsage).where(col(GatewayUsage.id) == usage_id)
            .values(status="pending", created_at=utcnow() - timedelta(hours=1), **values))
        await session.commit()


async def _call(gw: AsyncTestClient[Litestar], key: str) -> str:
    response = await gw.get("/v1/gateway/echo/echo", headers=key_headers(key))
    assert response.status_code == 200, response.text
    usage_id: str = response.headers["x-gateway-usage-id"]
    await settled_usage(gw, key, usage_id)
    return usage_id


async def test_a_reservation_that_cannot_be_released_is_parked_while_the_others_are(
    make_gateway,
) -> None:
    gw = await make_gateway(job_max_failures=LIMIT)
    runtime: Runtime = gw.app.state.runtime
    settings = runtime.settings
    # given two agents whose calls were abandoned mid-flight, one of them hand-edited to a
    # reservation larger than any balance may hold (giving it back is refused)
    good_key, broken_key = await signup(gw), await signup(gw)
    good_call, broken_call = await _call(gw, good_key), await _call(gw, broken_key)
    async with database(settings) as sessions:
        await _abandon(sessions, good_call)
        await _abandon(sessions, broken_call, price_micros=MAX_BALANCE_MICROS + 1)
        try:
            async with running_actors(settings) as run:
                # when the release job runs more often than the limit
                for _ in range(LIMIT + 2):
                    await run(release_stale, retries=0)
            items = (await gw.get("/admin/v1/attention", params={"ref": broken_call},
                                  headers=ADMIN)).json()["data"]
            good_record = (await usage(gw, good_key))["data"][0]
            broken_record = (await usage(gw, broken_key))["data"][0]
            good_balance = await balance(gw, good_key)
            broken_balance = await balance(gw, broken_key)
        finally:
            # the broken row is repaired and closed, or every later sweep would park it again
            async with sessions() as session:
                await session.execute(
                    update(GatewayUsage).where(col(GatewayUsage.id) == broken_call)
                    .values(status="failed", price_micros=PRICE, error="abandoned"))
                await session.execute(delete(AttentionItem)
                                      .where(col(AttentionItem.ref) == broken_call))
                await session.commit()

    # then the broken one is parked after the limit (counted no further) and left pending,
    # nothing half-done: its agent still charged the call; the good one was released
    assert [(i["kind"], i["status"], i["attempts"], i["actor"]) for i in items] == [
        ("gateway_reservation", "open", LIMIT, "gateway_release_stale")]
    assert "BalanceLimitExceeded" in items[0]["errorType"]
    assert (broken_record["id"], broken_record["status"]) == (broken_call, "pending")
    assert broken_balance["creditsMicros"] == STARTER - PRICE
    assert (good_record["id"], good_record["status"], good_record["error"]) == (
        good_call, "failed", "abandoned")
    assert good_balance["creditsMicros"] == STARTER


async def test_a_lease_that_cannot_be_closed_is_parked_as_a_lease_while_the_others_close(
    make_gateway,
) -> None:
    gw = await make_gateway(job_max_failures=LIMIT, gateway_credit_leases=True,
                            gateway_lease_seconds=60)
    runtime: Runtime = gw.app.state.runtime
    settings = runtime.settings
    # given two agents whose leases were left open long past their expiry (as if their
    # process died), one hand-edited to hold more than any balance may (giving it back is
    # refused)
    good_key, broken_key = await signup(gw), await signup(gw)
    agents = []
    for key in (good_key, broken_key):
        assert (await gw.get("/v1/gateway/echo/echo", headers=key_headers(key))).status_code \
            == 200
        agents.append((await recorded(gw, key))[0]["agentId"])
    (good,), (broken,) = [await leases_of(gw, agent_id) for agent_id in agents]
    async with database(settings) as sessions:
        async with sessions() as session:
            stale = utcnow() - timedelta(hours=1)
            await session.execute(update(CreditLease).where(col(CreditLease.id) == good.id)
                                  .values(expires_at=stale))
            await session.execute(update(CreditLease).where(col(CreditLease.id) == broken.id)
                                  .values(expires_at=stale, amount_micros=2 * MAX_BALANCE_MICROS))
            await session.commit()
        try:
            async with running_actors(settings) as run:
                # when the sweeper runs more often than the limit
                for _ in range(LIMIT + 2):
                    await run(release_stale, retries=0)
            items = (await gw.get("/admin/v1/attention", params={"ref": broken.id},
                                  headers=ADMIN)).json()["data"]
            (good_after,), (broken_after,) = [await leases_of(gw, a) for a in agents]
            good_balance = await balance(gw, good_key)
        finally:
            # the broken lease is repaired, or every later sweep would park it again
            async with sessions() as session:
                await session.execute(update(CreditLease)
                                      .where(col(CreditLease.id) == broken.id)
                                      .values(amount_micros=broken.amount_micros))
                await session.execute(delete(AttentionItem)
                                      .where(col(AttentionItem.ref) == broken.id))
                await session.commit()

    # then the broken one is parked under its own kind after the limit and left open; the
    # good one was closed by the sweeper, its one call charged and the rest given back
    assert [(i["kind"], i["status"], i["attempts"], i["actor"]) for i in items] == [
        ("gateway_lease", "open", LIMIT, "gateway_release_stale")]
    assert "BalanceLimitExceeded" in items[0]["errorType"]
    assert broken_after.state == "open"
    assert (good_after.state, good_after.closed_by, good_after.used_micros) == (
        "closed", "sweeper", PRICE)
    assert (good_balance["creditsMicros"], good_balance["heldMicros"]) == (STARTER - PRICE, 0)
    # and an operator can list parked leases by their kind
    listed = await gw.get("/admin/v1/attention", params={"kind": "gateway_lease"},
                          headers=ADMIN)
    assert listed.status_code == 200, listed.text
