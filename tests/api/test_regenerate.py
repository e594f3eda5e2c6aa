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
