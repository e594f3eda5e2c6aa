"""Agent self-service: registration, /v1/agents/me, claim URLs."""

from __future__ import annotations

from tests.factories import assert_error, key_headers, register_agent, unique


async def test_registering_an_agent_returns_its_key_and_claim_code_once(client):
    # given
    name = unique()

    # when
    response = await client.post(
        "/v1/agents/register", json={"name": name, "description": "does things"}
    )

    # then
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["agentId"].startswith("agt_")
    assert body["agentName"] == name
    assert body["apiKey"].startswith("ak_")
    assert body["claimCode"]
    assert body["claimUrl"].endswith(f"/v1/claims#{body['claimCode']}")
    assert body["creditsMicros"] == 0


async def test_registration_needs_a_name(client):
    # when
    response = await client.post("/v1/agents/register", json={"name": "   "})

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_me_describes_the_calling_agent_and_key(client):
    # given
    agent = await register_agent(client)

    # when
    response = await client.get("/v1/agents/me", headers=key_headers(agent["apiKey"]))

    # then
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["agent"]["id"] == agent["agentId"]
    assert body["agent"]["claimed"] is False
    assert body["key"]["id"] == agent["keyId"]
    assert body["key"]["type"] == "agent"
    assert body["creditsMicros"] == 0
    assert body["rateLimit"]["requestsPerMinute"] == 60
    assert agent["apiKey"] not in response.text


async def test_me_accepts_the_key_as_a_bearer_token(client):
    # given
    agent = await register_agent(client)

    # when
    response = await client.get(
        "/v1/agents/me", headers={"Authorization": f"Bearer {agent['apiKey']}"}
    )

    # then
    assert response.status_code == 200, response.text
    assert response.json()["agent"]["id"] == agent["agentId"]


async def test_a_claim_code_names_the_agent_it_belongs_to(client):
    # given
    agent = await register_agent(client)

    # when
    response = await client.get(f"/v1/claims/{agent['claimCode']}")

    # then
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["agentId"] == agent["agentId"]
    assert body["agentName"] == agent["agentName"]
    assert body["claimed"] is False
    assert "claim" in body["howToClaim"]


async def test_starter_credits_for_registered_agents_are_configurable(make_client):
    # given an instance that grants 2 USD to each registered agent
    client = await make_client(agent_starter_credits_micros=2_000_000)

    # when
    agent = await register_agent(client)

    # then
    assert agent["creditsMicros"] == 2_000_000
    balance = await client.get("/v1/balance", headers=key_headers(agent["apiKey"]))
    assert balance.json()["creditsMicros"] == 2_000_000
