"""Someone else's resource is indistinguishable from a missing one (404), and stays intact."""

from __future__ import annotations

from tests.factories import (
    assert_error,
    create_key,
    create_platform_agent,
    key_headers,
    master_headers,
    register_agent,
)


async def test_an_agent_does_not_see_another_agents_keys(client):
    # given two agents
    alice = await register_agent(client)
    bob = await register_agent(client)
    bobs_extra = await create_key(client, bob["apiKey"])

    # when alice lists keys
    response = await client.get("/v1/api-keys", headers=key_headers(alice["apiKey"]))

    # then only hers are there
    ids = {k["id"] for k in response.json()["data"]}
    assert ids == {alice["keyId"]}
    assert bobs_extra["id"] not in ids


async def test_an_agent_cannot_revoke_another_agents_key(client):
    # given
    alice = await register_agent(client)
    bob = await register_agent(client)

    # when alice revokes bob's key by id
    response = await client.delete(f"/v1/api-keys/{bob['keyId']}",
                                   headers=key_headers(alice["apiKey"]))

    # then it is "not found" and bob's key still works
    assert_error(response, 404, "NOT_FOUND")
    still = await client.get("/v1/api-keys/info", headers=key_headers(bob["apiKey"]))
    assert still.status_code == 200, still.text


async def test_an_agent_cannot_regenerate_another_agents_key(client):
    # given
    alice = await register_agent(client)
    bob = await register_agent(client)

    # when alice regenerates bob's key by id
    response = await client.post(f"/v1/api-keys/{bob['keyId']}/regenerate",
                                 json={"gracePeriodSeconds": 0},
                                 headers=key_headers(alice["apiKey"]))

    # then it is "not found" and bob's secret still works
    assert_error(response, 404, "NOT_FOUND")
    still = await client.get("/v1/api-keys/info", headers=key_headers(bob["apiKey"]))
    assert still.status_code == 200, still.text


async def test_someone_elses_key_and_a_missing_key_look_the_same(client):
    # given
    alice = await register_agent(client)
    bob = await register_agent(client)

    # when
    theirs = await client.delete(f"/v1/api-keys/{bob['keyId']}",
                                 headers=key_headers(alice["apiKey"]))
    missing = await client.delete("/v1/api-keys/key_01J0000000000000000000000",
                                  headers=key_headers(alice["apiKey"]))

    # then
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["error"] == missing.json()["error"]


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
