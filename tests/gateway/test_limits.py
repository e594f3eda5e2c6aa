"""Daily spending limits, per agent and per fleet, enforced with the charge."""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.factories import assert_error, create_platform, key_headers, master_headers, unique
from tests.gateway.conftest import GatewayFactory
from tests.gateway.helpers import PRICE

Client = AsyncTestClient[Litestar]


async def fleet_agent(
    client: Client,
    admin_headers: dict[str, str],
    master: str,
    credits: int = 1_000_000,
    **fields: Any,
) -> dict[str, Any]:
    """A platform agent with ``credits`` micros; returns ``{"id", "key"}``."""
    created = await client.post(
        "/v1/platform/agents",
        json={"name": unique("fleet"), **fields},
        headers=master_headers(master),
    )
    assert created.status_code == 201, created.text
    agent_id = created.json()["agent"]["id"]
    grant = await client.post(
        "/admin/v1/credits/adjustments",
        headers=admin_headers,
        json={"agentId": agent_id, "amountMicros": credits, "reason": "test credits"},
    )
    assert grant.status_code == 201, grant.text
    return {"id": agent_id, "key": created.json()["apiKey"]}


async def call(client: Client, key: str, path: str = "echo") -> int:
    response = await client.get(f"/v1/gateway/echo/{path}", headers=key_headers(key))
    return response.status_code


async def balance_of(client: Client, key: str) -> int:
    body = (await client.get("/v1/balance", headers=key_headers(key))).json()
    micros: int = body["creditsMicros"]
    return micros


async def test_an_agents_daily_limit_stops_its_calls(
    gw: Client, admin_headers: dict[str, str]
) -> None:
    # Given a fleet agent with 1 USD and a daily limit of three calls
    platform = await create_platform(gw, admin_headers)
    agent = await fleet_agent(
        gw, admin_headers, platform["masterKey"], dailySpendingLimitMicros=3 * PRICE
    )

    # When it makes a fourth call
    assert [await call(gw, agent["key"]) for _ in range(3)] == [200, 200, 200]
    response = await gw.get("/v1/gateway/echo/echo", headers=key_headers(agent["key"]))

    # Then it is refused, uncharged, and told which limit and when it resets
    body = assert_error(response, 402, "SPENDING_LIMIT_EXCEEDED")
    assert body["details"]["scope"] == "agent"
    assert body["details"]["limitMicros"] == 3 * PRICE
    assert body["details"]["spentTodayMicros"] == 3 * PRICE
    assert body["details"]["resetsAt"].endswith("T00:00:00Z")
    assert await balance_of(gw, agent["key"]) == 1_000_000 - 3 * PRICE


async def test_failed_calls_do_not_count_against_the_limit(
    gw: Client, admin_headers: dict[str, str]
) -> None:
    platform = await create_platform(gw, admin_headers)
    agent = await fleet_agent(
        gw, admin_headers, platform["masterKey"], dailySpendingLimitMicros=2 * PRICE
    )

    assert [await call(gw, agent["key"], "status/500") for _ in range(3)] == [502] * 3
    assert [await call(gw, agent["key"]) for _ in range(3)] == [200, 200, 402]


async def test_the_fleet_limit_covers_all_agents_of_the_platform(
    gw: Client, admin_headers: dict[str, str]
) -> None:
    # Given a platform with a fleet-wide limit of three calls a day and two agents
    platform = await create_platform(gw, admin_headers)
    master = platform["masterKey"]
    limit = await gw.put(
        "/v1/platform/spending-limit",
        json={"dailyLimitMicros": 3 * PRICE},
        headers=master_headers(master),
    )
    assert limit.status_code == 200, limit.text
    first = await fleet_agent(gw, admin_headers, master)
    second = await fleet_agent(gw, admin_headers, master)

    # When they spend three calls between them
    assert [await call(gw, first["key"]) for _ in range(2)] == [200, 200]
    assert await call(gw, second["key"]) == 200

    # Then neither can make another one today
    for agent in (first, second):
        response = await gw.get("/v1/gateway/echo/echo", headers=key_headers(agent["key"]))
        body = assert_error(response, 402, "SPENDING_LIMIT_EXCEEDED")
        assert body["details"]["scope"] == "platform"
    # And an agent of another platform is not affected
    other = await create_platform(gw, admin_headers)
    outsider = await fleet_agent(gw, admin_headers, other["masterKey"])
    assert await call(gw, outsider["key"]) == 200


async def test_raising_the_limit_takes_effect_at_once(
    gw: Client, admin_headers: dict[str, str]
) -> None:
    platform = await create_platform(gw, admin_headers)
    master = platform["masterKey"]
    agent = await fleet_agent(gw, admin_headers, master, dailySpendingLimitMicros=PRICE)
    assert [await call(gw, agent["key"]) for _ in range(2)] == [200, 402]

    raised = await gw.patch(
        f"/v1/platform/agents/{agent['id']}",
        json={"dailySpendingLimitMicros": 2 * PRICE},
        headers=master_headers(master),
    )
    assert raised.status_code == 200, raised.text

    assert [await call(gw, agent["key"]) for _ in range(2)] == [200, 402]


async def test_a_limit_holds_under_concurrent_calls(
    make_gateway: GatewayFactory, admin_headers: dict[str, str]
) -> None:
    # Given two app instances and an agent allowed five calls a day
    first = await make_gateway()
    second = await make_gateway()
    platform = await create_platform(first, admin_headers)
    agent = await fleet_agent(
        first, admin_headers, platform["masterKey"], dailySpendingLimitMicros=5 * PRICE
    )

    # When 20 calls race
    statuses = await asyncio.gather(
        *(call(first if i % 2 else second, agent["key"]) for i in range(20))
    )

    # Then exactly five pass
    assert sorted(statuses) == [200] * 5 + [402] * 15
    assert await balance_of(first, agent["key"]) == 1_000_000 - 5 * PRICE


async def test_a_just_claimed_agent_counts_toward_the_fleet_even_where_its_key_is_cached(
    make_gateway: GatewayFactory, admin_headers: dict[str, str]
) -> None:
    # Given a self-registered agent whose key another process has cached (no platform yet)
    first = await make_gateway()
    second = await make_gateway(key_cache_seconds=5)
    registered = (await first.post("/v1/agents/register", json={"name": unique()})).json()
    key = registered["apiKey"]
    grant = await first.post(
        "/admin/v1/credits/adjustments",
        headers=admin_headers,
        json={"agentId": registered["agentId"], "amountMicros": 1_000_000, "reason": "test"},
    )
    assert grant.status_code == 201, grant.text
    assert (await second.get("/v1/balance", headers=key_headers(key))).status_code == 200

    # When a platform with a one-call fleet limit claims it
    platform = await create_platform(first, admin_headers)
    master = platform["masterKey"]
    await first.put(
        "/v1/platform/spending-limit",
        json={"dailyLimitMicros": PRICE},
        headers=master_headers(master),
    )
    claimed = await first.post(
        "/v1/platform/agents/claim",
        json={"claimCode": registered["claimCode"]},
        headers=master_headers(master),
    )
    assert claimed.status_code == 200, claimed.text

    # Then its calls through the stale process count toward the fleet at once
    assert await call(second, key) == 200
    response = await second.get("/v1/gateway/echo/echo", headers=key_headers(key))
    assert assert_error(response, 402, "SPENDING_LIMIT_EXCEEDED")["details"]["scope"] == "platform"
