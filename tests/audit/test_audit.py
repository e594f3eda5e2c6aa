"""Every admin and platform mutation is in the audit log: who, what, when, before/after."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tests.factories import (
    create_platform,
    create_platform_agent,
    master_headers,
    register_agent,
)

ENV_ADMIN = "env-admin-token"


@dataclass
class Mutation:
    """What one scenario did, and what its audit entry must say."""

    response: Any
    target_id: str
    actor_type: str
    actor_id: str
    before: dict[str, Any] | None
    after: dict[str, Any]


# -- admin mutations -------------------------------------------------------------------------


async def admin_creates_platform(client, admin):
    response = await client.post("/admin/v1/platforms", json={"name": "audited"}, headers=admin)
    target = response.json()["platform"]["id"]
    return Mutation(response, target, "admin", ENV_ADMIN, None, {"name": "audited"})


async def admin_updates_platform(client, admin):
    platform = await create_platform(client, admin)
    pid = platform["platform"]["id"]
    response = await client.patch(f"/admin/v1/platforms/{pid}", json={"disabled": True},
                                  headers=admin)
    return Mutation(response, pid, "admin", ENV_ADMIN, {"disabled": False}, {"disabled": True})


async def admin_updates_agent(client, admin):
    agent = await register_agent(client)
    response = await client.patch(f"/admin/v1/agents/{agent['agentId']}", json={"plan": "pro"},
                                  headers=admin)
    return Mutation(response, agent["agentId"], "admin", ENV_ADMIN, {"plan": "free"},
                    {"plan": "pro"})


async def admin_updates_key(client, admin):
    agent = await register_agent(client)
    response = await client.patch(f"/admin/v1/keys/{agent['keyId']}",
                                  json={"rateLimitPerMinute": 5}, headers=admin)
    return Mutation(response, agent["keyId"], "admin", ENV_ADMIN, {"rateLimitPerMinute": None},
                    {"rateLimitPerMinute": 5})


async def admin_revokes_key(client, admin):
    agent = await register_agent(client)
    response = await client.post(f"/admin/v1/keys/{agent['keyId']}/revoke", headers=admin)
    return Mutation(response, agent["keyId"], "admin", ENV_ADMIN, {"status": "active"},
                    {"status": "revoked"})


async def admin_creates_token(client, admin):
    response = await client.post("/admin/v1/tokens", json={"label": "audited"}, headers=admin)
    return Mutation(response, response.json()["id"], "admin", ENV_ADMIN, None,
                    {"label": "audited"})


async def admin_adjusts_credits(client, admin):
    agent = await register_agent(client)
    response = await client.post(
        "/admin/v1/credits/adjustments",
        json={"agentId": agent["agentId"], "amountMicros": 42, "reason": "audited"},
        headers=admin,
    )
    return Mutation(response, agent["agentId"], "admin", ENV_ADMIN, None,
                    {"amountMicros": 42, "reason": "audited"})


# -- platform mutations ----------------------------------------------------------------------


async def _platform(client, admin) -> tuple[dict[str, Any], dict[str, str]]:
    platform = await create_platform(client, admin)
    return platform, master_headers(platform["masterKey"])


async def platform_creates_agent(client, admin):
    platform, mk = await _platform(client, admin)
    response = await client.post("/v1/platform/agents", json={"name": "audited"}, headers=mk)
    return Mutation(response, response.json()["agent"]["id"], "platform",
                    platform["masterKeyId"], None, {"name": "audited"})


async def platform_updates_agent(client, admin):
    platform, mk = await _platform(client, admin)
    agent = await create_platform_agent(client, platform["masterKey"])
    aid = agent["agent"]["id"]
    response = await client.patch(f"/v1/platform/agents/{aid}", json={"disabled": True},
                                  headers=mk)
    return Mutation(response, aid, "platform", platform["masterKeyId"], {"disabled": False},
                    {"disabled": True})


async def platform_rotates_agent_key(client, admin):
    platform, mk = await _platform(client, admin)
    agent = await create_platform_agent(client, platform["masterKey"])
    response = await client.post(f"/v1/platform/agents/{agent['agent']['id']}/rotate-key",
                                 json={"gracePeriodSeconds": 30}, headers=mk)
    return Mutation(response, agent["keyId"], "platform", platform["masterKeyId"], None,
                    {"gracePeriodSeconds": 30})


async def platform_claims_agent(client, admin):
    platform, mk = await _platform(client, admin)
    agent = await register_agent(client)
    response = await client.post("/v1/platform/agents/claim",
                                 json={"claimCode": agent["claimCode"]}, headers=mk)
    return Mutation(response, agent["agentId"], "platform", platform["masterKeyId"],
                    {"platformId": None}, {"platformId": platform["platform"]["id"]})


async def platform_sets_spending_limit(client, admin):
    platform, mk = await _platform(client, admin)
    response = await client.put("/v1/platform/spending-limit", json={"dailyLimitMicros": 9},
                                headers=mk)
    return Mutation(response, platform["platform"]["id"], "platform", platform["masterKeyId"],
                    {"dailyLimitMicros": None}, {"dailyLimitMicros": 9})


async def platform_creates_master_key(client, admin):
    platform, mk = await _platform(client, admin)
    response = await client.post("/v1/platform/master-keys", json={"label": "audited"},
                                 headers=mk)
    return Mutation(response, response.json()["id"], "platform", platform["masterKeyId"], None,
                    {"label": "audited"})


async def platform_revokes_master_key(client, admin):
    platform, mk = await _platform(client, admin)
    second = (await client.post("/v1/platform/master-keys", json={}, headers=mk)).json()
    response = await client.delete(f"/v1/platform/master-keys/{second['id']}", headers=mk)
    return Mutation(response, second["id"], "platform", platform["masterKeyId"],
                    {"status": "active"}, {"status": "revoked"})


MUTATIONS = {
    "platform.create": admin_creates_platform,
    "platform.update": admin_updates_platform,
    "agent.update (admin)": admin_updates_agent,
    "key.update": admin_updates_key,
    "key.revoke": admin_revokes_key,
    "admin_token.create": admin_creates_token,
    "credits.adjust": admin_adjusts_credits,
    "agent.create": platform_creates_agent,
    "agent.update (platform)": platform_updates_agent,
    "agent.rotate_key": platform_rotates_agent_key,
    "agent.claim": platform_claims_agent,
    "platform.spending_limit": platform_sets_spending_limit,
    "master_key.create": platform_creates_master_key,
    "master_key.revoke": platform_revokes_master_key,
}


@pytest.mark.parametrize("action", list(MUTATIONS))
async def test_a_mutation_is_audited_with_actor_and_before_after(client, admin_headers, action):
    # given / when a mutation succeeds
    done = await MUTATIONS[action](client, admin_headers)
    assert done.response.is_success, done.response.text

    # then exactly one entry names who did it, to what, and the state before and after
    response = await client.get(
        "/admin/v1/audit-log",
        params={"targetId": done.target_id, "action": action.split(" ")[0]},
        headers=admin_headers,
    )
    assert response.status_code == 200, response.text
    entries = response.json()["data"]
    assert len(entries) == 1, entries
    entry = entries[0]
    assert entry["actorType"] == done.actor_type
    assert entry["actorId"] == done.actor_id
    assert entry["requestId"] == done.response.headers["x-request-id"]
    assert entry["createdAt"].endswith("Z")
    if done.before is None:
        assert entry["before"] is None
    else:
        assert done.before.items() <= entry["before"].items(), entry
    assert done.after.items() <= entry["after"].items(), entry


async def test_a_failed_mutation_leaves_no_audit_entry(client, admin_headers):
    # given a platform whose only master key tries to revoke itself (409)
    platform = await create_platform(client, admin_headers)
    refused = await client.delete(f"/v1/platform/master-keys/{platform['masterKeyId']}",
                                  headers=master_headers(platform["masterKey"]))
    assert refused.status_code == 409

    # when
    response = await client.get(
        "/admin/v1/audit-log",
        params={"targetId": platform["masterKeyId"], "action": "master_key.revoke"},
        headers=admin_headers,
    )

    # then
    assert response.json()["data"] == []


async def test_the_audit_log_filters_by_actor(client, admin_headers):
    # given a platform that made one change
    platform = await create_platform(client, admin_headers)
    await client.put("/v1/platform/spending-limit", json={"dailyLimitMicros": 1},
                     headers=master_headers(platform["masterKey"]))

    # when
    response = await client.get("/admin/v1/audit-log",
                                params={"actorId": platform["masterKeyId"]},
                                headers=admin_headers)

    # then
    assert [e["action"] for e in response.json()["data"]] == ["platform.spending_limit"]



async def test_revoking_a_revoked_master_key_is_audited_as_no_change(client, admin_headers):
    # given a platform's second master key, already revoked
    platform = await create_platform(client, admin_headers)
    mk = master_headers(platform["masterKey"])
    second = (await client.post("/v1/platform/master-keys", json={}, headers=mk)).json()
    first = await client.delete(f"/v1/platform/master-keys/{second['id']}", headers=mk)
    assert first.status_code == 200, first.text

    # when it is revoked again
    again = await client.delete(f"/v1/platform/master-keys/{second['id']}", headers=mk)

    # then the repeat succeeds, and its entry says the key was revoked before as after
    assert again.status_code == 200, again.text
    response = await client.get(
        "/admin/v1/audit-log",
        params={"targetId": second["id"], "action": "master_key.revoke"},
        headers=admin_headers,
    )
    entries = {e["requestId"]: e for e in response.json()["data"]}
    assert entries[first.headers["x-request-id"]]["before"] == {"status": "active"}
    repeat = entries[again.headers["x-request-id"]]
    assert (repeat["before"], repeat["after"]) == ({"status": "revoked"}, {"status": "revoked"})
