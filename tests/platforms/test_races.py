"""Requests racing for one row: the database lets exactly one of them win.

The app is served on a real socket (``tests.fixtures.live``) so the requests really overlap;
each race is repeated a few times, since one round may happen not to interleave.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.settings import Settings
from tests.factories import (
    assert_error,
    create_key,
    create_platform,
    create_platform_agent,
    key_headers,
    master_headers,
    register_agent,
)
from tests.fixtures.live import serve

ROUNDS = 5
# Every request of a race must be answered within this (a lock that is never released would
# otherwise hang the test until the run's timeout).
REQUEST_TIMEOUT = 30.0


@pytest.fixture(scope="module")
async def live(settings_factory: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        serve(create_app(settings_factory())) as url,
        httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT) as http,
    ):
        yield http


async def together(*requests: Any) -> list[httpx.Response]:
    return list(await asyncio.gather(*requests))


async def works(live: httpx.AsyncClient, secret: str) -> bool:
    response = await live.get("/v1/api-keys/info", headers=key_headers(secret))
    assert response.status_code in (200, 401), response.text
    return response.status_code == 200


async def test_two_platforms_claiming_one_code_at_once_leave_it_with_one(live, admin_headers):
    for _ in range(ROUNDS):
        # given a self-registered agent and two platforms
        platforms = [await create_platform(live, admin_headers) for _ in range(2)]
        agent = await register_agent(live)

        # when both platforms claim its code at the same moment
        responses = await together(*(
            live.post("/v1/platform/agents/claim", json={"claimCode": agent["claimCode"]},
                      headers=master_headers(p["masterKey"]))
            for p in platforms
        ))

        # then one gets the agent, the other is answered as for a used code
        assert sorted(r.status_code for r in responses) == [200, 404], [r.text for r in responses]
        [won] = [r for r in responses if r.status_code == 200]
        [lost] = [r for r in responses if r.status_code == 404]
        assert_error(lost, 404, "NOT_FOUND")
        winner = won.json()["platformId"]
        stored = await live.get(f"/admin/v1/agents/{agent['agentId']}", headers=admin_headers)
        assert stored.json()["platformId"] == winner
        # and only the winner's claim is in the audit log
        audit = await live.get("/admin/v1/audit-log", headers=admin_headers,
                               params={"targetId": agent["agentId"], "action": "agent.claim"})
        assert [e["after"]["platformId"] for e in audit.json()["data"]] == [winner]


async def test_two_rotations_of_an_agent_key_at_once_leave_one_secret_working(
    live, admin_headers
):
    for _ in range(ROUNDS):
        # given a fleet agent
        platform = await create_platform(live, admin_headers)
        created = await create_platform_agent(live, platform["masterKey"])
        path = f"/v1/platform/agents/{created['agent']['id']}/rotate-key"

        # when its key is rotated twice at the same moment, without a grace period
        responses = await together(*(
            live.post(path, json={"gracePeriodSeconds": 0},
                      headers=master_headers(platform["masterKey"]))
            for _ in range(2)
        ))

        # then both rotations succeed, but only one of the new secrets (and not the old) works
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        fresh = [await works(live, r.json()["apiKey"]) for r in responses]
        assert sorted(fresh) == [False, True]
        assert not await works(live, created["apiKey"])


async def test_two_rotations_of_an_agent_without_an_agent_key_at_once_issue_one_key(
    live, admin_headers
):
    for _ in range(ROUNDS):
        # given a fleet agent that revoked its own agent key
        platform = await create_platform(live, admin_headers)
        created = await create_platform_agent(live, platform["masterKey"])
        revoked = await live.delete(f"/v1/api-keys/{created['keyId']}",
                                    headers=key_headers(created["apiKey"]))
        assert revoked.status_code == 200, revoked.text
        path = f"/v1/platform/agents/{created['agent']['id']}/rotate-key"

        # when its platform restores access twice at the same moment
        responses = await together(*(
            live.post(path, json={"gracePeriodSeconds": 0},
                      headers=master_headers(platform["masterKey"]))
            for _ in range(2)
        ))

        # then both succeed on one new agent key (the later rotating the earlier's), and
        # exactly one of the two secrets works
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        assert len({r.json()["keyId"] for r in responses}) == 1
        fresh = [await works(live, r.json()["apiKey"]) for r in responses]
        assert sorted(fresh) == [False, True]


async def test_two_regenerations_of_a_key_at_once_leave_one_secret_working(live):
    for _ in range(ROUNDS):
        # given an agent's extra key
        agent = await register_agent(live)
        key = await create_key(live, agent["apiKey"])

        # when it is regenerated twice at the same moment, without a grace period
        responses = await together(*(
            live.post(f"/v1/api-keys/{key['id']}/regenerate", json={"gracePeriodSeconds": 0},
                      headers=key_headers(agent["apiKey"]))
            for _ in range(2)
        ))

        # then both regenerations succeed, but only one of the new secrets (and not the old)
        # works
        assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
        fresh = [await works(live, r.json()["key"]) for r in responses]
        assert sorted(fresh) == [False, True]
        assert not await works(live, key["key"])
