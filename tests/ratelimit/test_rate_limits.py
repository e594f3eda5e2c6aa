"""Per-key limits shared by every API process through Redis; per-IP limits on sign-ups."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from tests.factories import (
    assert_error,
    create_key,
    key_headers,
    register_agent,
    unique,
)

LIMIT = 3
ROUTE = "/v1/api-keys/info"


@pytest.fixture(autouse=True)
async def away_from_a_minute_boundary():
    """Windows are aligned to the clock's minutes; a test that straddled a boundary would see
    its counter reset halfway. Start each test at least two seconds before the next one."""
    left = 60 - time.time() % 60
    if left < 2:
        await asyncio.sleep(left + 0.05)


async def _spend(client, key: str, times: int) -> None:
    for _ in range(times):
        response = await client.get(ROUTE, headers=key_headers(key))
        assert response.status_code == 200, response.text


async def test_keyed_responses_carry_rate_limit_headers(client):
    # given
    agent = await register_agent(client)

    # when
    response = await client.get(ROUTE, headers=key_headers(agent["apiKey"]))

    # then
    assert response.headers["X-RateLimit-Limit"] == "60"
    assert response.headers["X-RateLimit-Remaining"] == "59"
    reset = int(response.headers["X-RateLimit-Reset"])
    assert time.time() < reset <= time.time() + 61


async def test_remaining_counts_down_with_each_request(client):
    # given
    agent = await register_agent(client)
    await _spend(client, agent["apiKey"], 2)

    # when
    response = await client.get(ROUTE, headers=key_headers(agent["apiKey"]))

    # then
    assert response.headers["X-RateLimit-Remaining"] == "57"


async def test_a_key_over_its_limit_gets_429_with_retry_after(make_client):
    # given a plan of three requests per minute, all used
    client = await make_client(plan_free_per_minute=LIMIT)
    agent = await register_agent(client)
    await _spend(client, agent["apiKey"], LIMIT)

    # when
    response = await client.get(ROUTE, headers=key_headers(agent["apiKey"]))

    # then
    assert_error(response, 429, "RATE_LIMITED")
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Limit"] == str(LIMIT)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert "X-RateLimit-Reset" in response.headers


async def test_an_admin_override_lowers_one_keys_limit(client, admin_headers):
    # given a key limited to three per minute by the operator
    agent = await register_agent(client)
    patched = await client.patch(f"/admin/v1/keys/{agent['keyId']}",
                                 json={"rateLimitPerMinute": LIMIT}, headers=admin_headers)
    assert patched.status_code == 200, patched.text
    await _spend(client, agent["apiKey"], LIMIT)

    # when
    response = await client.get(ROUTE, headers=key_headers(agent["apiKey"]))

    # then
    assert_error(response, 429, "RATE_LIMITED")


async def test_a_daily_limit_is_enforced(make_client):
    # given a plan of two requests per day, both used
    client = await make_client(plan_free_per_day=2)
    agent = await register_agent(client)
    await _spend(client, agent["apiKey"], 2)

    # when
    response = await client.get(ROUTE, headers=key_headers(agent["apiKey"]))

    # then
    assert_error(response, 429, "RATE_LIMITED")
    assert int(response.headers["Retry-After"]) > 60


async def test_the_limit_is_shared_by_two_api_processes(make_client, settings_factory):
    # given two API processes on one Redis with a limit of three per minute
    settings = settings_factory(plan_free_per_minute=LIMIT)
    first = await make_client(settings)
    second = await make_client(settings)
    agent = await register_agent(first)

    # when the requests are split across both
    await _spend(first, agent["apiKey"], 2)
    await _spend(second, agent["apiKey"], 1)
    over_second = await second.get(ROUTE, headers=key_headers(agent["apiKey"]))
    over_first = await first.get(ROUTE, headers=key_headers(agent["apiKey"]))

    # then the fourth request is refused whichever process gets it
    assert_error(over_second, 429, "RATE_LIMITED")
    assert_error(over_first, 429, "RATE_LIMITED")


async def test_one_keys_limit_never_leaks_to_another_key(make_client):
    # given two keys of the same agent, one of which used up its limit
    client = await make_client(plan_free_per_minute=LIMIT)
    agent = await register_agent(client)
    other = await create_key(client, agent["apiKey"])  # the first of its three requests
    await _spend(client, agent["apiKey"], LIMIT - 1)
    assert (await client.get(ROUTE, headers=key_headers(agent["apiKey"]))).status_code == 429

    # when the other key is used
    response = await client.get(ROUTE, headers=key_headers(other["key"]))

    # then it has its whole allowance
    assert response.status_code == 200, response.text
    assert response.headers["X-RateLimit-Remaining"] == str(LIMIT - 1)


async def test_another_agents_limit_never_leaks(make_client):
    # given one agent over its limit
    client = await make_client(plan_free_per_minute=LIMIT)
    busy = await register_agent(client)
    await _spend(client, busy["apiKey"], LIMIT)
    assert (await client.get(ROUTE, headers=key_headers(busy["apiKey"]))).status_code == 429

    # when another agent calls
    calm = await register_agent(client)
    response = await client.get(ROUTE, headers=key_headers(calm["apiKey"]))

    # then
    assert response.status_code == 200, response.text


# -- sign-ups per client IP -------------------------------------------------------------------


async def _signup_client(make_client):
    # A fresh Redis prefix: the per-IP budget of this test starts at zero.
    return await make_client(signup_per_minute=2, redis_prefix=f"pgtest-signup:{uuid.uuid4().hex}")


async def test_registrations_from_one_address_are_limited(make_client):
    # given an address that registered twice
    client = await _signup_client(make_client)
    await register_agent(client)
    await register_agent(client)

    # when it registers again
    response = await client.post("/v1/agents/register", json={"name": unique()})

    # then
    assert_error(response, 429, "RATE_LIMITED")
    assert int(response.headers["Retry-After"]) >= 1


async def test_all_unauthenticated_key_creation_shares_one_budget(make_client):
    # given an address that registered once and signed up by e-mail once
    client = await _signup_client(make_client)
    await register_agent(client)
    signup = await client.post("/v1/keys", json={"email": f"{unique()}@example.com"})
    assert signup.status_code == 201, signup.text

    # when it asks for an unclaimed key
    response = await client.post("/v1/api-keys", json={})

    # then
    assert_error(response, 429, "RATE_LIMITED")


async def test_a_forwarded_for_header_from_an_untrusted_peer_does_not_reset_the_budget(
    make_client
):
    # given an address whose budget is used up
    client = await _signup_client(make_client)
    await register_agent(client)
    await register_agent(client)

    # when it claims to be someone else
    response = await client.post("/v1/agents/register", json={"name": unique()},
                                 headers={"X-Forwarded-For": "203.0.113.9"})

    # then
    assert_error(response, 429, "RATE_LIMITED")


async def test_an_authenticated_caller_is_not_held_to_the_signup_budget(make_client):
    # given an address whose sign-up budget is used up by an agent's own registration
    client = await _signup_client(make_client)
    agent = await register_agent(client)
    await register_agent(client)

    # when the agent creates an extra key with its key
    response = await client.post("/v1/api-keys", json={"label": "extra"},
                                 headers=key_headers(agent["apiKey"]))

    # then
    assert response.status_code == 201, response.text
