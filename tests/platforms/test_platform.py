"""Platform routes (X-Master-Key): fleet agents, claiming, spending limit, master keys."""

from __future__ import annotations

import pytest

from tests.factories import (
    assert_error,
    create_key,
    create_platform_agent,
    key_headers,
    master_headers,
    register_agent,
    rfc3339_in,
)


def mk(platform) -> dict[str, str]:
    return master_headers(platform["masterKey"])


async def test_a_platform_reads_itself(client, platform):
    # when
    response = await client.get("/v1/platform", headers=mk(platform))

    # then
    assert response.status_code == 200, response.text
    assert response.json()["id"] == platform["platform"]["id"]


# -- agents ----------------------------------------------------------------------------------


async def test_creating_a_fleet_agent_returns_its_key_once(client, platform):
    # when
    response = await client.post(
        "/v1/platform/agents",
        json={"name": "worker-1", "description": "d", "plan": "pro",
              "dailySpendingLimitMicros": 5_000_000},
        headers=mk(platform),
    )

    # then
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["apiKey"].startswith("ak_")
    assert body["keyId"].startswith("key_")
    agent = body["agent"]
    assert agent["platformId"] == platform["platform"]["id"]
    assert agent["claimed"] is True
    assert agent["plan"] == "pro"
    assert agent["dailySpendingLimitMicros"] == 5_000_000


async def test_a_fleet_agents_key_works_with_its_plan_limits(client, platform):
    # given a pro agent
    created = await create_platform_agent(client, platform["masterKey"], plan="pro")

    # when
    response = await client.get("/v1/api-keys/info", headers=key_headers(created["apiKey"]))

    # then
    assert response.status_code == 200, response.text
    assert response.json()["rateLimit"]["requestsPerMinute"] == 600


async def test_listing_the_fleet_pages_with_a_cursor(client, platform):
    # given three agents
    ids = {(await create_platform_agent(client, platform["masterKey"]))["agent"]["id"]
           for _ in range(3)}

    # when
    first = await client.get("/v1/platform/agents", params={"limit": 2}, headers=mk(platform))
    second = await client.get(
        "/v1/platform/agents", params={"limit": 2, "cursor": first.json()["nextCursor"]},
        headers=mk(platform),
    )

    # then
    assert first.status_code == 200, first.text
    assert len(first.json()["data"]) == 2
    assert second.json()["nextCursor"] is None
    assert {a["id"] for a in first.json()["data"] + second.json()["data"]} == ids


async def test_listing_the_fleet_filters_disabled_agents(client, platform):
    # given one enabled and one disabled agent
    await create_platform_agent(client, platform["masterKey"])
    off = await create_platform_agent(client, platform["masterKey"])
    await client.patch(f"/v1/platform/agents/{off['agent']['id']}", json={"disabled": True},
                       headers=mk(platform))

    # when
    response = await client.get("/v1/platform/agents", params={"disabled": "true"},
                                headers=mk(platform))

    # then
    assert [a["id"] for a in response.json()["data"]] == [off["agent"]["id"]]


async def test_a_platform_reads_one_of_its_agents(client, platform):
    # given
    created = await create_platform_agent(client, platform["masterKey"])

    # when
    response = await client.get(f"/v1/platform/agents/{created['agent']['id']}",
                                headers=mk(platform))

    # then
    assert response.status_code == 200, response.text
    assert response.json()["id"] == created["agent"]["id"]


async def test_a_platform_renames_an_agent_and_sets_its_spending_limit(client, platform):
    # given
    created = await create_platform_agent(client, platform["masterKey"])

    # when
    response = await client.patch(
        f"/v1/platform/agents/{created['agent']['id']}",
        json={"name": "renamed", "plan": "enterprise", "dailySpendingLimitMicros": 1_000_000},
        headers=mk(platform),
    )

    # then
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "renamed"
    assert body["plan"] == "enterprise"
    assert body["dailySpendingLimitMicros"] == 1_000_000


async def test_a_negative_agent_spending_limit_is_a_validation_error(client, platform):
    # given
    created = await create_platform_agent(client, platform["masterKey"])

    # when
    response = await client.patch(
        f"/v1/platform/agents/{created['agent']['id']}",
        json={"dailySpendingLimitMicros": -1}, headers=mk(platform),
    )

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_disabling_an_agent_forbids_all_its_keys(client, platform):
    # given a fleet agent with an extra key, both used once
    created = await create_platform_agent(client, platform["masterKey"])
    extra = await create_key(client, created["apiKey"])

    # when the platform disables the agent
    response = await client.patch(f"/v1/platform/agents/{created['agent']['id']}",
                                  json={"disabled": True}, headers=mk(platform))

    # then every key of the agent is forbidden
    assert response.status_code == 200, response.text
    assert response.json()["disabled"] is True
    for key in (created["apiKey"], extra["key"]):
        refused = await client.get("/v1/api-keys/info", headers=key_headers(key))
        body = assert_error(refused, 403, "FORBIDDEN")
        assert "disabled" in body["error"]


async def test_re_enabling_an_agent_restores_its_keys(client, platform):
    # given a disabled agent
    created = await create_platform_agent(client, platform["masterKey"])
    path = f"/v1/platform/agents/{created['agent']['id']}"
    await client.patch(path, json={"disabled": True}, headers=mk(platform))

    # when it is enabled again
    await client.patch(path, json={"disabled": False}, headers=mk(platform))

    # then
    response = await client.get("/v1/api-keys/info", headers=key_headers(created["apiKey"]))
    assert response.status_code == 200, response.text


async def test_rotating_an_agents_key_replaces_its_secret(client, platform):
    # given
    created = await create_platform_agent(client, platform["masterKey"])

    # when
    response = await client.post(f"/v1/platform/agents/{created['agent']['id']}/rotate-key",
                                 json={"gracePeriodSeconds": 0}, headers=mk(platform))

    # then the new secret works and the old one does not
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["keyId"] == created["keyId"]
    assert body["apiKey"].startswith("ak_")
    new = await client.get("/v1/api-keys/info", headers=key_headers(body["apiKey"]))
    old = await client.get("/v1/api-keys/info", headers=key_headers(created["apiKey"]))
    assert new.status_code == 200, new.text
    assert_error(old, 401, "UNAUTHORIZED")


async def test_rotating_with_a_grace_keeps_the_old_secret_for_a_while(client, platform):
    # given
    created = await create_platform_agent(client, platform["masterKey"])

    # when
    response = await client.post(f"/v1/platform/agents/{created['agent']['id']}/rotate-key",
                                 json={"gracePeriodSeconds": 60}, headers=mk(platform))

    # then
    assert response.status_code == 200, response.text
    old = await client.get("/v1/api-keys/info", headers=key_headers(created["apiKey"]))
    assert old.status_code == 200, old.text


# -- claiming --------------------------------------------------------------------------------


async def test_claiming_a_self_registered_agent_moves_it_into_the_fleet(client, platform):
    # given
    agent = await register_agent(client)

    # when
    response = await client.post("/v1/platform/agents/claim",
                                 json={"claimCode": agent["claimCode"]}, headers=mk(platform))

    # then
    assert response.status_code == 200, response.text
    assert response.json()["id"] == agent["agentId"]
    assert response.json()["platformId"] == platform["platform"]["id"]
    assert response.json()["claimed"] is True
    fleet = await client.get(f"/v1/platform/agents/{agent['agentId']}", headers=mk(platform))
    assert fleet.status_code == 200, fleet.text


async def test_a_claimed_agents_key_belongs_to_the_platforms_tenant(client, platform):
    # given a claimed agent
    agent = await register_agent(client)
    await client.post("/v1/platform/agents/claim", json={"claimCode": agent["claimCode"]},
                      headers=mk(platform))

    # when it calls under the platform's tenant
    response = await client.get(
        "/v1/api-keys/info",
        headers={**key_headers(agent["apiKey"]), "X-Tenant-ID": platform["platform"]["id"]},
    )

    # then
    assert response.status_code == 200, response.text


async def test_a_claim_code_works_only_once(client, platform, other_platform):
    # given a claimed agent
    agent = await register_agent(client)
    first = await client.post("/v1/platform/agents/claim",
                              json={"claimCode": agent["claimCode"]}, headers=mk(platform))
    assert first.status_code == 200, first.text

    # when another platform tries the same code
    response = await client.post("/v1/platform/agents/claim",
                                 json={"claimCode": agent["claimCode"]},
                                 headers=mk(other_platform))

    # then
    assert_error(response, 404, "NOT_FOUND")


async def test_a_used_claim_url_is_gone(client, platform):
    # given a claimed agent
    agent = await register_agent(client)
    await client.post("/v1/platform/agents/claim", json={"claimCode": agent["claimCode"]},
                      headers=mk(platform))

    # when
    response = await client.get(f"/v1/claims/{agent['claimCode']}")

    # then
    assert_error(response, 404, "NOT_FOUND")


async def test_an_unknown_claim_code_is_not_found(client, platform):
    # when
    response = await client.post("/v1/platform/agents/claim",
                                 json={"claimCode": "clm_nope"}, headers=mk(platform))

    # then
    assert_error(response, 404, "NOT_FOUND")


# -- spending limit --------------------------------------------------------------------------


async def test_a_platform_sets_its_fleet_spending_limit(client, platform):
    # when
    response = await client.put("/v1/platform/spending-limit",
                                json={"dailyLimitMicros": 25_000_000}, headers=mk(platform))

    # then
    assert response.status_code == 200, response.text
    assert response.json() == {"platformId": platform["platform"]["id"],
                               "dailyLimitMicros": 25_000_000}
    me = await client.get("/v1/platform", headers=mk(platform))
    assert me.json()["dailySpendingLimitMicros"] == 25_000_000


async def test_a_platform_removes_its_fleet_spending_limit_with_null(client, platform):
    # given
    await client.put("/v1/platform/spending-limit", json={"dailyLimitMicros": 1},
                     headers=mk(platform))

    # when
    response = await client.put("/v1/platform/spending-limit", json={"dailyLimitMicros": None},
                                headers=mk(platform))

    # then
    assert response.status_code == 200, response.text
    assert response.json()["dailyLimitMicros"] is None


async def test_a_negative_fleet_spending_limit_is_a_validation_error(client, platform):
    # when
    response = await client.put("/v1/platform/spending-limit", json={"dailyLimitMicros": -5},
                                headers=mk(platform))

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


# -- master keys -----------------------------------------------------------------------------


async def test_a_platform_creates_another_master_key_that_works(client, platform):
    # when
    response = await client.post("/v1/platform/master-keys", json={"label": "ci"},
                                 headers=mk(platform))

    # then
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["key"].startswith("mk_")
    assert body["label"] == "ci"
    works = await client.get("/v1/platform/agents", headers=master_headers(body["key"]))
    assert works.status_code == 200, works.text


async def test_a_platform_lists_its_master_keys_without_secrets(client, platform):
    # given
    second = (await client.post("/v1/platform/master-keys", json={}, headers=mk(platform))).json()

    # when
    response = await client.get("/v1/platform/master-keys", headers=mk(platform))

    # then
    assert response.status_code == 200, response.text
    assert {k["id"] for k in response.json()["data"]} == {platform["masterKeyId"], second["id"]}
    assert all(k["type"] == "master" for k in response.json()["data"])
    assert second["key"] not in response.text
    assert platform["masterKey"] not in response.text


async def test_a_master_key_revokes_another_master_key(client, platform):
    # given
    second = (await client.post("/v1/platform/master-keys", json={}, headers=mk(platform))).json()

    # when
    response = await client.delete(f"/v1/platform/master-keys/{second['id']}",
                                   headers=mk(platform))

    # then
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "revoked"
    refused = await client.get("/v1/platform/agents", headers=master_headers(second["key"]))
    assert_error(refused, 401, "UNAUTHORIZED")


async def test_a_master_key_cannot_revoke_itself(client, platform):
    # when
    response = await client.delete(f"/v1/platform/master-keys/{platform['masterKeyId']}",
                                   headers=mk(platform))

    # then it is a conflict and the key keeps working
    assert_error(response, 409, "CONFLICT")
    still = await client.get("/v1/platform/agents", headers=mk(platform))
    assert still.status_code == 200, still.text


async def test_a_master_key_cannot_be_created_already_expired(client, platform):
    # when
    response = await client.post("/v1/platform/master-keys",
                                 json={"expiresAt": "2000-01-01T00:00:00Z"}, headers=mk(platform))

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_an_expiring_master_key_cannot_mint_a_permanent_one(client, platform):
    # given a master key that expires in an hour
    expiring = await client.post("/v1/platform/master-keys",
                                 json={"label": "temp", "expiresAt": rfc3339_in(3600)},
                                 headers=mk(platform))
    assert expiring.status_code == 201, expiring.text
    temp = expiring.json()

    # when it creates a master key without expiry, and one expiring later than itself
    forever = await client.post("/v1/platform/master-keys", json={"label": "forever"},
                                headers=master_headers(temp["key"]))
    later = await client.post("/v1/platform/master-keys",
                              json={"label": "later", "expiresAt": "2090-01-01T00:00:00Z"},
                              headers=master_headers(temp["key"]))

    # then both end when their creator does
    assert forever.status_code == 201, forever.text
    assert later.status_code == 201, later.text
    assert forever.json()["expiresAt"] == temp["expiresAt"]
    assert later.json()["expiresAt"] == temp["expiresAt"]


@pytest.mark.parametrize("expires_at", ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"])
async def test_a_master_key_expiry_with_no_utc_equivalent_is_a_validation_error(
    client, platform, expires_at
):
    # when
    response = await client.post("/v1/platform/master-keys", json={"expiresAt": expires_at},
                                 headers=mk(platform))

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_platform_responses_carry_rate_limit_headers(client, platform):
    # when
    response = await client.get("/v1/platform/agents", headers=mk(platform))

    # then
    assert int(response.headers["X-RateLimit-Limit"]) > 0
    assert "X-RateLimit-Remaining" in response.headers
