"""Operator routes under /admin/v1 (admin token)."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from app.credits.limits import MAX_BALANCE_MICROS, MAX_CALL_MICROS
from tests.factories import (
    assert_error,
    bearer,
    create_key,
    create_platform_agent,
    key_headers,
    master_headers,
    register_agent,
    rfc3339_in,
    unique,
)

# -- platforms -------------------------------------------------------------------------------


async def test_creating_a_platform_returns_its_first_master_key(client, admin_headers):
    # given
    name = unique("platform")

    # when
    response = await client.post("/admin/v1/platforms", json={"name": name},
                                 headers=admin_headers)

    # then
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["platform"]["name"] == name
    assert body["platform"]["id"].startswith("plt_")
    assert body["masterKey"].startswith("mk_")
    works = await client.get("/v1/platform", headers=master_headers(body["masterKey"]))
    assert works.json()["id"] == body["platform"]["id"]


async def test_listing_platforms_includes_a_new_one(client, admin_headers, platform):
    # when
    response = await client.get("/admin/v1/platforms", params={"limit": 500},
                                headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert platform["platform"]["id"] in {p["id"] for p in response.json()["data"]}


async def test_reading_a_platform_by_id(client, admin_headers, platform):
    # when
    response = await client.get(f"/admin/v1/platforms/{platform['platform']['id']}",
                                headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json() == platform["platform"]


async def test_reading_an_unknown_platform_is_not_found(client, admin_headers):
    # when
    response = await client.get("/admin/v1/platforms/plt_nope", headers=admin_headers)

    # then
    assert_error(response, 404, "NOT_FOUND")


async def test_updating_a_platform_changes_its_name_and_limit(client, admin_headers, platform):
    # when
    response = await client.patch(
        f"/admin/v1/platforms/{platform['platform']['id']}",
        json={"name": "renamed", "dailySpendingLimitMicros": 7}, headers=admin_headers,
    )

    # then
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "renamed"
    assert response.json()["dailySpendingLimitMicros"] == 7


async def test_disabling_a_platform_forbids_its_master_keys(client, admin_headers, platform):
    # given a master key that has been used
    assert (await client.get("/v1/platform",
                             headers=master_headers(platform["masterKey"]))).is_success

    # when the operator disables the platform
    await client.patch(f"/admin/v1/platforms/{platform['platform']['id']}",
                       json={"disabled": True}, headers=admin_headers)

    # then
    response = await client.get("/v1/platform", headers=master_headers(platform["masterKey"]))
    assert_error(response, 403, "FORBIDDEN")


async def test_disabling_a_platform_forbids_its_agents_keys(client, admin_headers, platform):
    # given a fleet agent
    fleet = await create_platform_agent(client, platform["masterKey"])

    # when the operator disables the platform
    await client.patch(f"/admin/v1/platforms/{platform['platform']['id']}",
                       json={"disabled": True}, headers=admin_headers)

    # then
    response = await client.get("/v1/api-keys/info", headers=key_headers(fleet["apiKey"]))
    assert_error(response, 403, "FORBIDDEN")


# -- agents ----------------------------------------------------------------------------------


async def test_listing_agents_filters_by_platform(client, admin_headers, platform):
    # given
    fleet = await create_platform_agent(client, platform["masterKey"])
    await register_agent(client)

    # when
    response = await client.get("/admin/v1/agents",
                                params={"platformId": platform["platform"]["id"]},
                                headers=admin_headers)

    # then
    assert [a["id"] for a in response.json()["data"]] == [fleet["agent"]["id"]]


async def test_searching_agents_by_name(client, admin_headers):
    # given
    name = unique("needle")
    agent = await register_agent(client, name=name)

    # when
    response = await client.get("/admin/v1/agents", params={"q": name.upper()},
                                headers=admin_headers)

    # then
    assert [a["id"] for a in response.json()["data"]] == [agent["agentId"]]


async def test_reading_an_agent_by_id(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    response = await client.get(f"/admin/v1/agents/{agent['agentId']}", headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json()["name"] == agent["agentName"]


async def test_upgrading_an_agent_raises_its_keys_rate_limit(client, admin_headers):
    # given an agent whose key has been used on the free plan
    agent = await register_agent(client)
    before = await client.get("/v1/api-keys/info", headers=key_headers(agent["apiKey"]))
    assert before.json()["rateLimit"]["requestsPerMinute"] == 60

    # when the operator moves it to pro
    response = await client.patch(f"/admin/v1/agents/{agent['agentId']}", json={"plan": "pro"},
                                  headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json()["plan"] == "pro"
    after = await client.get("/v1/api-keys/info", headers=key_headers(agent["apiKey"]))
    assert after.json()["rateLimit"]["requestsPerMinute"] == 600


async def test_an_operator_disables_an_agent(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    await client.patch(f"/admin/v1/agents/{agent['agentId']}", json={"disabled": True},
                       headers=admin_headers)

    # then
    response = await client.get("/v1/api-keys/info", headers=key_headers(agent["apiKey"]))
    assert_error(response, 403, "FORBIDDEN")


async def test_an_unknown_agent_plan_is_a_validation_error(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    response = await client.patch(f"/admin/v1/agents/{agent['agentId']}",
                                  json={"plan": "platinum"}, headers=admin_headers)

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


# -- keys ------------------------------------------------------------------------------------


async def test_listing_keys_filters_by_agent(client, admin_headers):
    # given
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])

    # when
    response = await client.get("/admin/v1/keys", params={"agentId": agent["agentId"]},
                                headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert {k["id"] for k in response.json()["data"]} == {agent["keyId"], extra["id"]}
    assert agent["apiKey"] not in response.text


async def test_listing_keys_filters_by_prefix(client, admin_headers):
    # given an agent with an ak_ and a pk_ key
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])

    # when
    response = await client.get("/admin/v1/keys",
                                params={"agentId": agent["agentId"], "prefix": "pk_"},
                                headers=admin_headers)

    # then
    assert [k["id"] for k in response.json()["data"]] == [extra["id"]]


async def test_listing_keys_filters_by_status(client, admin_headers):
    # given an agent with one revoked key
    agent = await register_agent(client)
    gone = await create_key(client, agent["apiKey"])
    await client.delete(f"/v1/api-keys/{gone['id']}", headers=key_headers(agent["apiKey"]))

    # when
    response = await client.get("/admin/v1/keys",
                                params={"agentId": agent["agentId"], "status": "revoked"},
                                headers=admin_headers)

    # then
    assert [k["id"] for k in response.json()["data"]] == [gone["id"]]


async def test_looking_up_a_key_by_its_secret(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    response = await client.post("/admin/v1/keys/lookup", json={"key": agent["apiKey"]},
                                 headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json()["id"] == agent["keyId"]
    assert response.json()["agentId"] == agent["agentId"]


async def test_looking_up_an_unknown_secret_is_not_found(client, admin_headers):
    # when
    response = await client.post("/admin/v1/keys/lookup", json={"key": "ak_nothing"},
                                 headers=admin_headers)

    # then
    assert_error(response, 404, "NOT_FOUND")


async def test_reading_a_key_by_id(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    response = await client.get(f"/admin/v1/keys/{agent['keyId']}", headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "agent"


async def test_overriding_a_keys_rate_limit(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    response = await client.patch(f"/admin/v1/keys/{agent['keyId']}",
                                  json={"rateLimitPerMinute": 7, "rateLimitPerDay": 100},
                                  headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json()["rateLimit"] == {"requestsPerMinute": 7, "requestsPerDay": 100}
    info = await client.get("/v1/api-keys/info", headers=key_headers(agent["apiKey"]))
    assert info.headers["X-RateLimit-Limit"] == "7"


@pytest.mark.parametrize("body", [{"rateLimitPerMinute": 0}, {"plan": "gold"}, {"x": 1}])
async def test_an_invalid_key_override_is_a_validation_error(client, admin_headers, body):
    # given
    agent = await register_agent(client)

    # when
    response = await client.patch(f"/admin/v1/keys/{agent['keyId']}", json=body,
                                  headers=admin_headers)

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_an_operator_revokes_a_key(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    response = await client.post(f"/admin/v1/keys/{agent['keyId']}/revoke",
                                 headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "revoked"
    refused = await client.get("/v1/api-keys/info", headers=key_headers(agent["apiKey"]))
    assert_error(refused, 401, "UNAUTHORIZED")


async def test_an_operator_creates_an_admin_token_that_works(client, admin_headers):
    # when
    response = await client.post("/admin/v1/tokens", json={"label": "ops"},
                                 headers=admin_headers)

    # then
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    assert token.startswith("adm_")
    works = await client.get("/admin/v1/platforms", headers=bearer(token))
    assert works.status_code == 200, works.text


async def test_an_expiring_admin_token_cannot_mint_a_permanent_one(client, admin_headers):
    # given an admin token that expires in an hour
    created = await client.post("/admin/v1/tokens",
                                json={"label": "temp", "expiresAt": rfc3339_in(3600)},
                                headers=admin_headers)
    assert created.status_code == 201, created.text
    temp = created.json()

    # when it creates a token without expiry
    response = await client.post("/admin/v1/tokens", json={"label": "forever"},
                                 headers=bearer(temp["token"]))

    # then the new token ends when its creator does
    assert response.status_code == 201, response.text
    assert response.json()["expiresAt"] == temp["expiresAt"]


@pytest.mark.parametrize("expires_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_an_admin_token_expiry_with_no_utc_equivalent_is_a_validation_error(
    client, admin_headers, expires_at
):
    # when
    response = await client.post("/admin/v1/tokens", json={"expiresAt": expires_at},
                                 headers=admin_headers)

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


# -- credits ---------------------------------------------------------------------------------


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


async def test_a_keys_rate_limit_as_the_operator_sees_it_follows_the_agents_plan(
    client, admin_headers, platform
):
    # given a pro fleet agent
    fleet = await create_platform_agent(client, platform["masterKey"], plan="pro")

    # when the operator looks at its key
    response = await client.get(f"/admin/v1/keys/{fleet['keyId']}", headers=admin_headers)

    # then it shows the limit the key actually gets
    assert response.json()["rateLimit"]["requestsPerMinute"] == 600


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
