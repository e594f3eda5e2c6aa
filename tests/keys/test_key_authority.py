"""Which key may revoke or regenerate which: never a wider key, never the agent key but by
itself; and a platform can always get its agent back.

A "narrow" key here is the attacker of the issue: a ``pk_`` key holding ``keys:write`` and
little else, made by the agent.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import (
    assert_error,
    create_key,
    create_platform_agent,
    key_headers,
    master_headers,
    register_agent,
)

EVERY_SCOPE = [
    "agent:read", "api:read", "balance:read", "gateway:call", "keys:read", "keys:write",
    "payments:read", "usage:read", "wallets:read", "wallets:write",
]


async def _works(client: Any, secret: str) -> bool:
    response = await client.get("/v1/api-keys/info", headers=key_headers(secret))
    return response.status_code == 200


async def _revoke(client: Any, caller: str, key_id: str) -> Any:
    return await client.delete(f"/v1/api-keys/{key_id}", headers=key_headers(caller))


async def _regenerate(client: Any, caller: str, key_id: str) -> Any:
    return await client.post(f"/v1/api-keys/{key_id}/regenerate",
                             json={"gracePeriodSeconds": 0}, headers=key_headers(caller))


# -- revoking --------------------------------------------------------------------------------


async def test_a_key_holding_only_keys_write_cannot_revoke_the_agent_key(client):
    # given an agent and a key that may only write keys
    agent = await register_agent(client)
    narrow = await create_key(client, agent["apiKey"], scopes=["keys:write"])

    # when it revokes the agent key
    response = await _revoke(client, narrow["key"], agent["keyId"])

    # then it is refused and the agent key still works
    body = assert_error(response, 403, "FORBIDDEN")
    assert "scopes it lacks" in body["error"]
    assert await _works(client, agent["apiKey"])


@pytest.mark.parametrize("action", [_revoke, _regenerate])
async def test_a_key_with_every_scope_cannot_revoke_or_regenerate_the_agent_key(client, action):
    # given a personal key as wide as the agent key
    agent = await register_agent(client)
    wide = await create_key(client, agent["apiKey"], scopes=EVERY_SCOPE)

    # when it revokes or regenerates the agent key
    response = await action(client, wide["key"], agent["keyId"])

    # then it is refused: only the agent key itself (or its platform) manages it
    body = assert_error(response, 403, "FORBIDDEN")
    assert "agent key" in body["error"]
    assert await _works(client, agent["apiKey"])


async def test_a_key_cannot_revoke_a_key_with_scopes_it_lacks(client):
    # given a key manager and a sibling key that can also call the gateway
    agent = await register_agent(client)
    manager = await create_key(client, agent["apiKey"], scopes=["keys:read", "keys:write"])
    caller = await create_key(client, agent["apiKey"],
                              scopes=["keys:read", "keys:write", "gateway:call"])

    # when the manager revokes it
    response = await _revoke(client, manager["key"], caller["id"])

    # then it is refused, naming the scope
    body = assert_error(response, 403, "FORBIDDEN")
    assert "gateway:call" in body["error"]
    assert await _works(client, caller["key"])


async def test_an_expiring_key_cannot_revoke_a_key_that_outlives_it(client):
    # given an expiring key manager and a permanent key with the same scopes
    agent = await register_agent(client)
    manager = await create_key(client, agent["apiKey"], scopes=["keys:write"],
                               expiresAt="2090-01-01T00:00:00Z")
    permanent = await create_key(client, agent["apiKey"], scopes=["keys:write"])

    # when
    response = await _revoke(client, manager["key"], permanent["id"])

    # then
    assert_error(response, 403, "FORBIDDEN")
    assert await _works(client, permanent["key"])


async def test_a_key_revokes_a_key_no_wider_and_no_longer_lived_than_itself(client):
    # given a key manager and a narrower key that expires sooner
    agent = await register_agent(client)
    manager = await create_key(client, agent["apiKey"], scopes=["keys:read", "keys:write"],
                               expiresAt="2090-01-01T00:00:00Z")
    reader = await create_key(client, agent["apiKey"], scopes=["keys:read"],
                              expiresAt="2080-01-01T00:00:00Z")

    # when
    response = await _revoke(client, manager["key"], reader["id"])

    # then
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "revoked"
    assert not await _works(client, reader["key"])


async def test_a_narrow_key_can_revoke_itself(client):
    # given
    agent = await register_agent(client)
    narrow = await create_key(client, agent["apiKey"], scopes=["keys:write"])

    # when
    response = await _revoke(client, narrow["key"], narrow["id"])

    # then
    assert response.status_code == 200, response.text
    assert not await _works(client, narrow["key"])


async def test_the_agent_key_revokes_any_of_its_agents_keys(client):
    # given a personal key with every scope
    agent = await register_agent(client)
    wide = await create_key(client, agent["apiKey"], scopes=EVERY_SCOPE)

    # when the agent key revokes it
    response = await _revoke(client, agent["apiKey"], wide["id"])

    # then
    assert response.status_code == 200, response.text
    assert not await _works(client, wide["key"])


# -- a narrow key against every key-management route ----------------------------------------


async def test_a_narrow_key_gains_nothing_from_any_key_route(client):
    # given the agent key, a wider sibling, and a key that may only write keys
    agent = await register_agent(client)
    sibling = await create_key(client, agent["apiKey"], scopes=["keys:write", "wallets:write"])
    narrow = await create_key(client, agent["apiKey"], scopes=["keys:write"])
    as_narrow = key_headers(narrow["key"])

    # when it tries each key route against what it does not hold
    attempts = {
        "create wider": await client.post(
            "/v1/api-keys", json={"label": "x", "scopes": ["keys:write", "gateway:call"]},
            headers=as_narrow),
        "list": await client.get("/v1/api-keys", headers=as_narrow),
        "revoke agent key": await _revoke(client, narrow["key"], agent["keyId"]),
        "regenerate agent key": await _regenerate(client, narrow["key"], agent["keyId"]),
        "revoke sibling": await _revoke(client, narrow["key"], sibling["id"]),
        "regenerate sibling": await _regenerate(client, narrow["key"], sibling["id"]),
    }
    # and creates a key without naming scopes
    default = await client.post("/v1/api-keys", json={"label": "y"}, headers=as_narrow)

    # then every attempt is refused, and the key it could create is no wider than itself
    assert {name: r.status_code for name, r in attempts.items()} == {
        "create wider": 400, "list": 403, "revoke agent key": 403,
        "regenerate agent key": 403, "revoke sibling": 403, "regenerate sibling": 403,
    }
    assert default.status_code == 201, default.text
    assert set(default.json()["scopes"]) <= {"keys:write"}
    assert await _works(client, agent["apiKey"])
    assert await _works(client, sibling["key"])


# -- the platform gets its agent back --------------------------------------------------------


async def test_rotate_key_gives_an_agent_whose_agent_key_was_revoked_a_new_one(
    client, platform
):
    # given a fleet agent that revoked its own agent key
    master = master_headers(platform["masterKey"])
    created = await create_platform_agent(client, platform["masterKey"])
    revoked = await _revoke(client, created["apiKey"], created["keyId"])
    assert revoked.status_code == 200, revoked.text

    # when its platform rotates the agent key
    response = await client.post(f"/v1/platform/agents/{created['agent']['id']}/rotate-key",
                                 json={"gracePeriodSeconds": 60}, headers=master)

    # then a new agent key with the agent key's scopes works, and the old one stays revoked
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["apiKey"].startswith("ak_")
    assert body["keyId"] != created["keyId"]
    assert body["previousKeyExpiresAt"] is None
    info = await client.get("/v1/api-keys/info", headers=key_headers(body["apiKey"]))
    assert info.status_code == 200, info.text
    assert sorted(info.json()["scopes"]) == EVERY_SCOPE
    assert not await _works(client, created["apiKey"])


async def test_rotating_a_reissued_agent_key_rotates_the_new_key(client, platform):
    # given a fleet agent whose agent key was reissued after a revocation
    master = master_headers(platform["masterKey"])
    created = await create_platform_agent(client, platform["masterKey"])
    await _revoke(client, created["apiKey"], created["keyId"])
    path = f"/v1/platform/agents/{created['agent']['id']}/rotate-key"
    reissued = (await client.post(path, json={"gracePeriodSeconds": 0}, headers=master)).json()

    # when the platform rotates again
    response = await client.post(path, json={"gracePeriodSeconds": 0}, headers=master)

    # then the same (new) key gets another secret; the agent has one agent key, not two
    assert response.status_code == 200, response.text
    assert response.json()["keyId"] == reissued["keyId"]
    assert response.json()["previousKeyExpiresAt"] is not None
    listed = await client.get("/v1/api-keys", headers=key_headers(response.json()["apiKey"]),
                              params={"status": "active"})
    assert [k["id"] for k in listed.json()["data"] if k["type"] == "agent"] == [
        reissued["keyId"]
    ]
