"""Regenerating a key with a grace period: both secrets work until it ends, then only the new."""

from __future__ import annotations

import asyncio
import time

from tests.factories import assert_error, create_key, key_headers, register_agent

GRACE_SECONDS = 2


async def _regenerate(client, owner_key: str, key_id: str, grace: int) -> dict:
    response = await client.post(
        f"/v1/api-keys/{key_id}/regenerate", json={"gracePeriodSeconds": grace},
        headers=key_headers(owner_key),
    )
    assert response.status_code == 200, response.text
    body: dict = response.json()
    return body


async def _works(client, secret: str) -> bool:
    response = await client.get("/v1/api-keys/info", headers=key_headers(secret))
    return response.status_code == 200


async def test_during_the_grace_period_both_secrets_work(client):
    # given a used key
    agent = await register_agent(client)
    old = await create_key(client, agent["apiKey"])
    assert await _works(client, old["key"])

    # when it is regenerated with a grace period
    new = await _regenerate(client, agent["apiKey"], old["id"], GRACE_SECONDS)

    # then the old and the new secret both authenticate as the same key
    assert await _works(client, old["key"])
    assert await _works(client, new["key"])
    assert new["previousKeyExpiresAt"].endswith("Z")


async def test_after_the_grace_period_only_the_new_secret_works(client):
    # given a key regenerated with a grace period
    agent = await register_agent(client)
    old = await create_key(client, agent["apiKey"])
    started = time.monotonic()
    new = await _regenerate(client, agent["apiKey"], old["id"], GRACE_SECONDS)

    # when the grace period has passed
    await asyncio.sleep(max(0.0, GRACE_SECONDS + 0.2 - (time.monotonic() - started)))

    # then the old secret is refused and the new one still works
    refused = await client.get("/v1/api-keys/info", headers=key_headers(old["key"]))
    body = assert_error(refused, 401, "UNAUTHORIZED")
    assert "regenerated" in body["error"]
    assert await _works(client, new["key"])


async def test_without_a_grace_period_the_old_secret_fails_at_once(client):
    # given a key that has been used (and so is cached)
    agent = await register_agent(client)
    old = await create_key(client, agent["apiKey"])
    assert await _works(client, old["key"])

    # when it is regenerated with no grace
    new = await _regenerate(client, agent["apiKey"], old["id"], 0)

    # then the old secret is refused immediately, the new one works
    refused = await client.get("/v1/api-keys/info", headers=key_headers(old["key"]))
    assert_error(refused, 401, "UNAUTHORIZED")
    assert await _works(client, new["key"])


async def test_a_key_can_regenerate_itself(client):
    # given
    agent = await register_agent(client)

    # when the agent key regenerates itself without a body
    response = await client.post(
        f"/v1/api-keys/{agent['keyId']}/regenerate", headers=key_headers(agent["apiKey"])
    )

    # then the new secret works and the old one does not
    assert response.status_code == 200, response.text
    assert await _works(client, response.json()["key"])
    assert not await _works(client, agent["apiKey"])


async def test_regenerating_twice_keeps_only_the_latest_secret_after_graces(client):
    # given a key regenerated with a grace, then again without one
    agent = await register_agent(client)
    first = await create_key(client, agent["apiKey"])
    second = await _regenerate(client, agent["apiKey"], first["id"], GRACE_SECONDS)

    # when
    third = await _regenerate(client, agent["apiKey"], first["id"], 0)

    # then the second regeneration ended every older grace at once
    assert not await _works(client, first["key"])
    assert not await _works(client, second["key"])
    assert await _works(client, third["key"])


# -- who may regenerate which key ------------------------------------------------------------

KEY_MANAGER = ["keys:read", "keys:write"]


async def test_a_key_cannot_regenerate_a_key_with_scopes_it_lacks(client):
    # given a key that may only manage keys, and the agent's full-scope key
    agent = await register_agent(client)
    manager = await create_key(client, agent["apiKey"], scopes=KEY_MANAGER)

    # when the manager regenerates the agent key
    response = await client.post(
        f"/v1/api-keys/{agent['keyId']}/regenerate", json={"gracePeriodSeconds": 0},
        headers=key_headers(manager["key"]),
    )

    # then it is refused and the agent key was not rotated
    body = assert_error(response, 403, "FORBIDDEN")
    assert "wallets:read" in body["error"]
    assert await _works(client, agent["apiKey"])


async def test_an_expiring_key_cannot_regenerate_a_key_that_never_expires(client):
    # given an expiring key manager and a permanent key with the same scopes
    agent = await register_agent(client)
    manager = await create_key(client, agent["apiKey"], scopes=KEY_MANAGER,
                               expiresAt="2090-01-01T00:00:00Z")
    permanent = await create_key(client, agent["apiKey"], scopes=KEY_MANAGER)

    # when the expiring key regenerates the permanent one
    response = await client.post(
        f"/v1/api-keys/{permanent['id']}/regenerate", headers=key_headers(manager["key"])
    )

    # then it is refused and the permanent key keeps its secret
    assert_error(response, 403, "FORBIDDEN")
    assert await _works(client, permanent["key"])


async def test_an_expiring_key_cannot_regenerate_a_key_that_expires_later(client):
    # given
    agent = await register_agent(client)
    manager = await create_key(client, agent["apiKey"], scopes=KEY_MANAGER,
                               expiresAt="2090-01-01T00:00:00Z")
    later = await create_key(client, agent["apiKey"], scopes=KEY_MANAGER,
                             expiresAt="2095-01-01T00:00:00Z")

    # when
    response = await client.post(
        f"/v1/api-keys/{later['id']}/regenerate", headers=key_headers(manager["key"])
    )

    # then
    assert_error(response, 403, "FORBIDDEN")


async def test_a_key_regenerates_a_key_no_wider_and_no_longer_lived_than_itself(client):
    # given an expiring key manager and a narrower key that expires sooner
    agent = await register_agent(client)
    manager = await create_key(client, agent["apiKey"], scopes=KEY_MANAGER,
                               expiresAt="2090-01-01T00:00:00Z")
    reader = await create_key(client, agent["apiKey"], scopes=["keys:read"],
                              expiresAt="2080-01-01T00:00:00Z")

    # when
    new = await _regenerate(client, manager["key"], reader["id"], 0)

    # then
    assert await _works(client, new["key"])
    assert not await _works(client, reader["key"])


async def test_a_narrow_expiring_key_can_regenerate_itself(client):
    # given
    agent = await register_agent(client)
    manager = await create_key(client, agent["apiKey"], scopes=KEY_MANAGER,
                               expiresAt="2090-01-01T00:00:00Z")

    # when
    new = await _regenerate(client, manager["key"], manager["id"], 0)

    # then
    assert await _works(client, new["key"])
