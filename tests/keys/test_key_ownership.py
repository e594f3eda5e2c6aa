"""Someone else's key is indistinguishable from a missing one (404), and stays intact."""

from __future__ import annotations

from tests.factories import (
    assert_error,
    create_key,
    key_headers,
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
