"""Another platform's agents and master keys are indistinguishable from missing ones (404),
and stay intact."""

from __future__ import annotations

from tests.factories import (
    assert_error,
    create_platform_agent,
    key_headers,
    master_headers,
    register_agent,
)


async def test_an_agent_cannot_revoke_a_platforms_master_key(client, platform):
    # given
    agent = await register_agent(client)

    # when
    response = await client.delete(f"/v1/api-keys/{platform['masterKeyId']}",
                                   headers=key_headers(agent["apiKey"]))

    # then
    assert_error(response, 404, "NOT_FOUND")


async def test_a_platform_does_not_list_another_platforms_agents(client, platform, other_platform):
    # given an agent in the other platform
    theirs = await create_platform_agent(client, other_platform["masterKey"])

    # when
    response = await client.get("/v1/platform/agents",
                                headers=master_headers(platform["masterKey"]))

    # then
    assert response.status_code == 200, response.text
    assert theirs["agent"]["id"] not in {a["id"] for a in response.json()["data"]}


async def test_a_platform_cannot_read_another_platforms_agent(client, platform, other_platform):
    # given
    theirs = await create_platform_agent(client, other_platform["masterKey"])

    # when
    response = await client.get(f"/v1/platform/agents/{theirs['agent']['id']}",
                                headers=master_headers(platform["masterKey"]))

    # then
    assert_error(response, 404, "NOT_FOUND")


async def test_a_platform_cannot_disable_another_platforms_agent(client, platform, other_platform):
    # given
    theirs = await create_platform_agent(client, other_platform["masterKey"])

    # when
    response = await client.patch(f"/v1/platform/agents/{theirs['agent']['id']}",
                                  json={"disabled": True},
                                  headers=master_headers(platform["masterKey"]))

    # then it is "not found" and the agent's key still works
    assert_error(response, 404, "NOT_FOUND")
    still = await client.get("/v1/api-keys/info", headers=key_headers(theirs["apiKey"]))
    assert still.status_code == 200, still.text


async def test_a_platform_cannot_rotate_another_platforms_agent_key(client, platform,
                                                                  other_platform):
    # given
    theirs = await create_platform_agent(client, other_platform["masterKey"])

    # when
    response = await client.post(f"/v1/platform/agents/{theirs['agent']['id']}/rotate-key",
                                 headers=master_headers(platform["masterKey"]))

    # then
    assert_error(response, 404, "NOT_FOUND")
    still = await client.get("/v1/api-keys/info", headers=key_headers(theirs["apiKey"]))
    assert still.status_code == 200, still.text


async def test_a_platform_cannot_read_a_self_registered_agent(client, platform):
    # given an agent nobody has claimed
    agent = await register_agent(client)

    # when
    response = await client.get(f"/v1/platform/agents/{agent['agentId']}",
                                headers=master_headers(platform["masterKey"]))

    # then
    assert_error(response, 404, "NOT_FOUND")


async def test_a_platform_cannot_revoke_another_platforms_master_key(client, platform,
                                                                   other_platform):
    # when
    response = await client.delete(f"/v1/platform/master-keys/{other_platform['masterKeyId']}",
                                   headers=master_headers(platform["masterKey"]))

    # then it is "not found" and the other platform's key still works
    assert_error(response, 404, "NOT_FOUND")
    still = await client.get("/v1/platform/agents",
                             headers=master_headers(other_platform["masterKey"]))
    assert still.status_code == 200, still.text


async def test_a_platform_does_not_list_another_platforms_master_keys(client, platform,
                                                                    other_platform):
    # when
    response = await client.get("/v1/platform/master-keys",
                                headers=master_headers(platform["masterKey"]))

    # then
    ids = {k["id"] for k in response.json()["data"]}
    assert ids == {platform["masterKeyId"]}
