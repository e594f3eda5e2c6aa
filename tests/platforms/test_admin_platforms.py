"""Operator routes for platforms under /admin/v1 (admin token)."""

from __future__ import annotations

from tests.factories import (
    assert_error,
    create_platform_agent,
    key_headers,
    master_headers,
    unique,
)


async def test_creating_a_platform_returns_its_first_master_key(client, admin_headers):
    # given
    name = unique("platform")

    # when
    response = await client.post("/admin/v1/platforms", json={"name": name},
                                 headers=admin_headers)

    # then
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["platform"]["name"] == name
    assert body["platform"]["id"].startswith("plt_")
    assert body["masterKey"].startswith("mk_")
    works = await client.get("/v1/platform", headers=master_headers(body["masterKey"]))
    assert works.json()["id"] == body["platform"]["id"]


async def test_listing_platforms_includes_a_new_one(client, admin_headers, platform):
    # when
    response = await client.get("/admin/v1/platforms", params={"limit": 500},
                                headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert platform["platform"]["id"] in {p["id"] for p in response.json()["data"]}


async def test_reading_a_platform_by_id(client, admin_headers, platform):
    # when
    response = await client.get(f"/admin/v1/platforms/{platform['platform']['id']}",
                                headers=admin_headers)

    # then
    assert response.status_code == 200, response.text
    assert response.json() == platform["platform"]


async def test_reading_an_unknown_platform_is_not_found(client, admin_headers):
    # when
    response = await client.get("/admin/v1/platforms/plt_nope", headers=admin_headers)

    # then
    assert_error(response, 404, "NOT_FOUND")


async def test_updating_a_platform_changes_its_name_and_limit(client, admin_headers, platform):
    # when
    response = await client.patch(
        f"/admin/v1/platforms/{platform['platform']['id']}",
        json={"name": "renamed", "dailySpendingLimitMicros": 7}, headers=admin_headers,
    )

    # then
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "renamed"
    assert response.json()["dailySpendingLimitMicros"] == 7


async def test_disabling_a_platform_forbids_its_master_keys(client, admin_headers, platform):
    # given a master key that has been used
    assert (await client.get("/v1/platform",
                             headers=master_headers(platform["masterKey"]))).is_success

    # when the operator disables the platform
    await client.patch(f"/admin/v1/platforms/{platform['platform']['id']}",
                       json={"disabled": True}, headers=admin_headers)

    # then
    response = await client.get("/v1/platform", headers=master_headers(platform["masterKey"]))
    assert_error(response, 403, "FORBIDDEN")


async def test_disabling_a_platform_forbids_its_agents_keys(client, admin_headers, platform):
    # given a fleet agent
    fleet = await create_platform_agent(client, platform["masterKey"])

    # when the operator disables the platform
    await client.patch(f"/admin/v1/platforms/{platform['platform']['id']}",
                       json={"disabled": True}, headers=admin_headers)

    # then
    response = await client.get("/v1/api-keys/info", headers=key_headers(fleet["apiKey"]))
    assert_error(response, 403, "FORBIDDEN")
