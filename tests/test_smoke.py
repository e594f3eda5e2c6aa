from __future__ import annotations

from tests.factories import create_key, key_headers, register_agent


async def test_register_then_list_keys(client):
    # given a registered agent with one extra key
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])

    # when it lists its keys
    response = await client.get("/v1/api-keys", headers=key_headers(agent["apiKey"]))

    # then both keys are there and no secret is
    assert response.status_code == 200, response.text
    ids = {k["id"] for k in response.json()["data"]}
    assert ids == {agent["keyId"], extra["id"]}
    assert agent["apiKey"] not in response.text
