"""Operator routes for credits under /admin/v1 (admin token): adjustments and the ledger."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.credits.limits import MAX_BALANCE_MICROS, MAX_CALL_MICROS
from tests.factories import (
    assert_error,
    key_headers,
    register_agent,
    unique,
)


async def _adjust(client, admin_headers, agent_id: str, amount: int, **extra):
    return await client.post(
        "/admin/v1/credits/adjustments",
        json={"agentId": agent_id, "amountMicros": amount, "reason": "goodwill", **extra},
        headers=admin_headers,
    )


async def test_a_credit_adjustment_raises_the_balance(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    response = await _adjust(client, admin_headers, agent["agentId"], 3_000_000)

    # then
    assert response.status_code == 201, response.text
    assert response.json()["balanceAfterMicros"] == 3_000_000
    assert response.json()["kind"] == "adjustment"
    balance = await client.get("/v1/balance", headers=key_headers(agent["apiKey"]))
    assert balance.json()["creditsMicros"] == 3_000_000
    assert balance.json()["credits_usd"] == 3.0


async def test_a_debit_adjustment_lowers_the_balance(client, admin_headers):
    # given an agent with 3 USD
    agent = await register_agent(client)
    await _adjust(client, admin_headers, agent["agentId"], 3_000_000)

    # when
    response = await _adjust(client, admin_headers, agent["agentId"], -1_000_000)

    # then
    assert response.status_code == 201, response.text
    assert response.json()["balanceAfterMicros"] == 2_000_000


async def test_a_debit_below_zero_is_refused(client, admin_headers):
    # given an agent with 1 USD
    agent = await register_agent(client)
    await _adjust(client, admin_headers, agent["agentId"], 1_000_000)

    # when
    response = await _adjust(client, admin_headers, agent["agentId"], -1_000_001)

    # then
    assert_error(response, 402, "INSUFFICIENT_CREDITS")
    balance = await client.get("/v1/balance", headers=key_headers(agent["apiKey"]))
    assert balance.json()["creditsMicros"] == 1_000_000


async def test_an_adjustment_with_the_same_idempotency_key_applies_once(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when the same adjustment is sent twice
    first = await _adjust(client, admin_headers, agent["agentId"], 500, idempotencyKey="t-1")
    second = await _adjust(client, admin_headers, agent["agentId"], 500, idempotencyKey="t-1")

    # then
    assert first.json()["id"] == second.json()["id"]
    balance = await client.get("/v1/balance", headers=key_headers(agent["apiKey"]))
    assert balance.json()["creditsMicros"] == 500


async def _count(database_url: str, sql: str, **params) -> int:
    engine = create_async_engine(database_url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(text(sql), params)).scalar_one())
    finally:
        await engine.dispose()


async def test_a_retried_adjustment_is_audited_and_announced_once(
    client, admin_headers, database_url
):
    # given a credit adjustment already made
    agent = await register_agent(client)
    key = unique("retry")
    first = await _adjust(client, admin_headers, agent["agentId"], 500, idempotencyKey=key)

    # when it is sent again with the same key
    second = await _adjust(client, admin_headers, agent["agentId"], 500, idempotencyKey=key)

    # then the answer is the first entry, and nothing was recorded twice
    assert first.status_code == second.status_code == 201, second.text
    assert second.json() == first.json()
    audit = await client.get("/admin/v1/audit-log", headers=admin_headers,
                             params={"targetId": agent["agentId"], "action": "credits.adjust"})
    assert len(audit.json()["data"]) == 1
    events = await _count(database_url, "SELECT count(*) FROM events WHERE agent_id = :a "
                          "AND type = 'credits.deposited'", a=agent["agentId"])
    assert events == 1


@pytest.mark.parametrize(("other_agent", "amount", "mismatched"), [
    (True, 500, ["agentId"]),
    (False, 700, ["amountMicros"]),
    (False, -500, ["amountMicros"]),
])
async def test_an_idempotency_key_reused_for_another_adjustment_is_a_conflict(
    client, admin_headers, other_agent, amount, mismatched
):
    # given a key used for 500 micros to one agent
    first = await register_agent(client)
    target = await register_agent(client) if other_agent else first
    await _adjust(client, admin_headers, first["agentId"], 1_000)
    key = unique("reused")
    await _adjust(client, admin_headers, first["agentId"], 500, idempotencyKey=key)

    # when the same key comes with another agent or amount
    response = await _adjust(client, admin_headers, target["agentId"], amount,
                             idempotencyKey=key)

    # then it is refused, and neither the balance nor the audit log moved
    body = assert_error(response, 409, "CONFLICT")
    assert body["details"]["mismatched"] == mismatched
    balance = await client.get("/v1/balance", headers=key_headers(target["apiKey"]))
    assert balance.json()["creditsMicros"] == (1_500 if target is first else 0)
    audit = await client.get("/admin/v1/audit-log", headers=admin_headers,
                             params={"targetId": target["agentId"], "action": "credits.adjust"})
    assert len(audit.json()["data"]) == (2 if target is first else 0)


async def test_an_adjustment_past_the_maximum_balance_is_refused(
    client, admin_headers, database_url
):
    # given an agent a billion-USDC step away from the maximum balance
    agent = await register_agent(client)
    start = MAX_BALANCE_MICROS - MAX_CALL_MICROS + 1
    engine = create_async_engine(database_url)
    async with engine.begin() as conn:
        await conn.execute(text("UPDATE agents SET balance_micros = :b WHERE id = :a"),
                           {"b": start, "a": agent["agentId"]})
    await engine.dispose()

    # when one more maximal credit is asked for
    response = await _adjust(client, admin_headers, agent["agentId"], MAX_CALL_MICROS)

    # then it is refused with the limit named, and the balance is untouched
    body = assert_error(response, 409, "CONFLICT")
    assert body["details"]["maxBalanceMicros"] == MAX_BALANCE_MICROS
    assert str(MAX_BALANCE_MICROS) in body["error"]
    balance = await client.get("/v1/balance", headers=key_headers(agent["apiKey"]))
    assert balance.json()["creditsMicros"] == start
    # up to the maximum exactly is still allowed
    exact = await _adjust(client, admin_headers, agent["agentId"], MAX_CALL_MICROS - 1)
    assert exact.status_code == 201, exact.text
    assert exact.json()["balanceAfterMicros"] == MAX_BALANCE_MICROS


@pytest.mark.parametrize("body", [
    {"amountMicros": 0, "reason": "nothing"},
    {"amountMicros": 5, "reason": ""},
    {"amountMicros": 1.5, "reason": "fraction"},
    {"amountMicros": "five", "reason": "string"},
    {"amountMicros": 10**16, "reason": "too much"},
])
async def test_an_invalid_adjustment_is_a_validation_error(client, admin_headers, body):
    # given
    agent = await register_agent(client)

    # when
    response = await client.post("/admin/v1/credits/adjustments",
                                  json={"agentId": agent["agentId"], **body},
                                  headers=admin_headers)

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_an_adjustment_for_an_unknown_agent_is_not_found(client, admin_headers):
    # when
    response = await _adjust(client, admin_headers, "agt_nope", 5)

    # then
    assert_error(response, 404, "NOT_FOUND")


async def test_the_ledger_lists_an_agents_entries(client, admin_headers):
    # given
    agent = await register_agent(client)
    await _adjust(client, admin_headers, agent["agentId"], 700)
    await _adjust(client, admin_headers, agent["agentId"], -200)

    # when
    response = await client.get("/admin/v1/credits/ledger", params={"agentId": agent["agentId"]},
                                headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    entries = response.json()["data"]
    assert sorted(e["amountMicros"] for e in entries) == [-200, 700]
    assert {e["reason"] for e in entries} == {"goodwill"}




async def test_concurrent_debits_never_take_a_balance_below_zero(client, admin_headers):
    # given an agent with 3 USD
    agent = await register_agent(client)
    await _adjust(client, admin_headers, agent["agentId"], 3_000_000)

    # when five 1 USD debits arrive at once
    responses = await asyncio.gather(*(
        _adjust(client, admin_headers, agent["agentId"], -1_000_000) for _ in range(5)
    ))

    # then three succeed, two are refused, and the balance is exactly zero
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [201, 201, 201, 402, 402], [r.text for r in responses]
    balance = await client.get("/v1/balance", headers=key_headers(agent["apiKey"]))
    assert balance.json()["creditsMicros"] == 0
