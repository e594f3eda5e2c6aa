"""Operator routes for agents under /admin/v1 (admin token)."""

from __future__ import annotations

from tests.factories import (
    assert_error,
    create_platform_agent,
    key_headers,
    register_agent,
    unique,
)


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
