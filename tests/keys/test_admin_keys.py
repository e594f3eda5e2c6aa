"""Operator routes for keys and admin tokens under /admin/v1 (admin token)."""

from __future__ import annotations

import pytest

from tests.factories import (
    assert_error,
    bearer,
    create_key,
    create_platform_agent,
    key_headers,
    register_agent,
    rfc3339_in,
)


async def test_listing_keys_filters_by_agent(client, admin_headers):
    # given
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])

    # when
    response = await client.get("/admin/v1/keys", params={"agentId": agent["agentId"]},
                                headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert {k["id"] for k in response.json()["data"]} == {agent["keyId"], extra["id"]}
    assert agent["apiKey"] not in response.text


async def test_listing_keys_filters_by_prefix(client, admin_headers):
    # given an agent with an ak_ and a pk_ key
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])

    # when
    response = await client.get("/admin/v1/keys",
                                params={"agentId": agent["agentId"], "prefix": "pk_"},
                                headers=admin_headers)

    # then
    assert [k["id"] for k in response.json()["data"]] == [extra["id"]]


async def test_listing_keys_filters_by_status(client, admin_headers):
    # given an agent with one revoked key
    agent = await register_agent(client)
    gone = await create_key(client, agent["apiKey"])
    await client.delete(f"/v1/api-keys/{gone['id']}", headers=key_headers(agent["apiKey"]))

    # when
    response = await client.get("/admin/v1/keys",
                                params={"agentId": agent["agentId"], "status": "revoked"},
                                headers=admin_headers)

    # then
    assert [k["id"] for k in response.json()["data"]] == [gone["id"]]


async def test_looking_up_a_key_by_its_secret(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    response = await client.post("/admin/v1/keys/lookup", json={"key": agent["apiKey"]},
                                 headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json()["id"] == agent["keyId"]
    assert response.json()["agentId"] == agent["agentId"]


async def test_looking_up_an_unknown_secret_is_not_found(client, admin_headers):
    # when
    response = await client.post("/admin/v1/keys/lookup", json={"key": "ak_nothing"},
                                 headers=admin_headers)

    # then
    assert_error(response, 404, "NOT_FOUND")


async def test_reading_a_key_by_id(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    response = await client.get(f"/admin/v1/keys/{agent['keyId']}", headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json()["type"] == "agent"


async def test_overriding_a_keys_rate_limit(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    response = await client.patch(f"/admin/v1/keys/{agent['keyId']}",
                                  json={"rateLimitPerMinute": 7, "rateLimitPerDay": 100},
                                  headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json()["rateLimit"] == {"requestsPerMinute": 7, "requestsPerDay": 100}
    info = await client.get("/v1/api-keys/info", headers=key_headers(agent["apiKey"]))
    assert info.headers["X-RateLimit-Limit"] == "7"


@pytest.mark.parametrize("body", [{"rateLimitPerMinute": 0}, {"plan": "gold"}, {"x": 1}])
async def test_an_invalid_key_override_is_a_validation_error(client, admin_headers, body):
    # given
    agent = await register_agent(client)

    # when
    response = await client.patch(f"/admin/v1/keys/{agent['keyId']}", json=body,
                                  headers=admin_headers)

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_an_operator_revokes_a_key(client, admin_headers):
    # given
    agent = await register_agent(client)

    # when
    response = await client.post(f"/admin/v1/keys/{agent['keyId']}/revoke",
                                 headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "revoked"
    refused = await client.get("/v1/api-keys/info", headers=key_headers(agent["apiKey"]))
    assert_error(refused, 401, "UNAUTHORIZED")


async def test_an_operator_creates_an_admin_token_that_works(client, admin_headers):
    # when
    response = await client.post("/admin/v1/tokens", json={"label": "ops"},
                                 headers=admin_headers)

    # then
    assert response.status_code == 201, response.text
    token = response.json()["token"]
    assert token.startswith("adm_")
    works = await client.get("/admin/v1/platforms", headers=bearer(token))
    assert works.status_code == 200, works.text


async def test_an_expiring_admin_token_cannot_mint_a_permanent_one(client, admin_headers):
    # given an admin token that expires in an hour
    created = await client.post("/admin/v1/tokens",
                                json={"label": "temp", "expiresAt": rfc3339_in(3600)},
                                headers=admin_headers)
    assert created.status_code == 201, created.text
    temp = created.json()

    # when it creates a token without expiry
    response = await client.post("/admin/v1/tokens", json={"label": "forever"},
                                 headers=bearer(temp["token"]))

    # then the new token ends when its creator does
    assert response.status_code == 201, response.text
    assert response.json()["expiresAt"] == temp["expiresAt"]


@pytest.mark.parametrize("expires_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_an_admin_token_expiry_with_no_utc_equivalent_is_a_validation_error(
    client, admin_headers, expires_at
):
    # when
    response = await client.post("/admin/v1/tokens", json={"expiresAt": expires_at},
                                 headers=admin_headers)

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_a_keys_rate_limit_as_the_operator_sees_it_follows_the_agents_plan(
    client, admin_headers, platform
):
    # given a pro fleet agent
    fleet = await create_platform_agent(client, platform["masterKey"], plan="pro")

    # when the operator looks at its key
    response = await client.get(f"/admin/v1/keys/{fleet['keyId']}", headers=admin_headers)

    # then it shows the limit the key actually gets
    assert response.json()["rateLimit"]["requestsPerMinute"] == 600
