"""Key holder key management: sign-up keys, personal keys, custom keys, info, list, revoke."""

from __future__ import annotations

import asyncio

import pytest

from tests.factories import (
    assert_error,
    create_key,
    key_headers,
    register_agent,
    rfc3339_in,
    unique,
    well_formed_key,
    with_checksum,
)


def custom_pk(random_chars: int = 27) -> str:
    return well_formed_key("pk", random_chars)


# -- POST /v1/keys (e-mail sign-up) ----------------------------------------------------------


async def test_email_signup_returns_a_gateway_key_with_ten_dollars(client):
    # when
    response = await client.post("/v1/keys", json={"email": f"{unique()}@example.com"})

    # then
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["api_key"].startswith("gw_")
    assert body["credits_usd"] == 10.0
    assert body["creditsMicros"] == 10_000_000


async def test_email_signup_key_sees_its_starter_balance(client):
    # given
    signup = (await client.post("/v1/keys", json={"email": f"{unique()}@example.com"})).json()

    # when
    response = await client.get("/v1/balance", headers=key_headers(signup["api_key"]))

    # then
    assert response.status_code == 200, response.text
    assert response.json() == {
        "credits_usd": 10.0, "total_spent": 0.0, "creditsMicros": 10_000_000, "spentMicros": 0,
        "heldMicros": 0,
    }


async def test_email_signup_twice_with_the_same_address_is_a_conflict(client):
    # given
    email = f"{unique()}@example.com"
    first = await client.post("/v1/keys", json={"email": email})
    assert first.status_code == 201, first.text

    # when the same address, differently cased, asks again
    response = await client.post("/v1/keys", json={"email": email.upper()})

    # then
    assert_error(response, 409, "CONFLICT")


async def test_email_signup_starter_credits_are_configurable(make_client):
    # given
    client = await make_client(starter_credits_micros=2_500_000)

    # when
    response = await client.post("/v1/keys", json={"email": f"{unique()}@example.com"})

    # then
    assert response.status_code == 201, response.text
    assert response.json()["credits_usd"] == 2.5


@pytest.mark.parametrize("email", ["not-an-email", "a@b", "@example.com", ""])
async def test_email_signup_rejects_an_invalid_address(client, email):
    # when
    response = await client.post("/v1/keys", json={"email": email})

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


# -- POST /v1/api-keys --------------------------------------------------------------------


async def test_creating_a_key_without_auth_gives_an_unclaimed_personal_key(client):
    # when
    response = await client.post("/v1/api-keys", json={"label": "my laptop"})

    # then
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["id"].startswith("key_")
    assert body["label"] == "my laptop"
    assert body["key"].startswith("pk_")
    assert body["type"] == "personal"
    assert body["claimCode"]
    info = await client.get("/v1/api-keys/info", headers=key_headers(body["key"]))
    assert info.status_code == 200, info.text
    assert info.json()["id"] == body["id"]


async def test_unclaimed_key_creation_needs_no_body_fields(client):
    # when
    response = await client.post("/v1/api-keys", json={})

    # then
    assert response.status_code == 201, response.text
    assert response.json()["key"].startswith("pk_")


async def test_unclaimed_key_cannot_choose_scopes(client):
    # when
    response = await client.post("/v1/api-keys", json={"scopes": ["keys:write"]})

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_an_agent_creates_an_additional_key_with_label_scopes_and_expiry(client):
    # given
    agent = await register_agent(client)
    expires_at = "2099-01-01T00:00:00Z"

    # when
    response = await client.post(
        "/v1/api-keys",
        json={"label": "ci", "scopes": ["balance:read", "keys:read"], "expiresAt": expires_at},
        headers=key_headers(agent["apiKey"]),
    )

    # then
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["key"].startswith("pk_")
    assert body["label"] == "ci"
    assert body["scopes"] == ["balance:read", "keys:read"]
    assert body["expiresAt"] == expires_at
    assert body["agentId"] == agent["agentId"]


async def test_an_additional_key_needs_a_label(client):
    # given
    agent = await register_agent(client)

    # when
    response = await client.post("/v1/api-keys", json={}, headers=key_headers(agent["apiKey"]))

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_an_additional_key_cannot_have_an_unknown_scope(client):
    # given
    agent = await register_agent(client)

    # when
    response = await client.post(
        "/v1/api-keys", json={"label": "x", "scopes": ["root"]},
        headers=key_headers(agent["apiKey"]),
    )

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_a_key_cannot_grant_scopes_it_does_not_have(client):
    # given a key that may create keys but not read balances
    agent = await register_agent(client)
    limited = await create_key(client, agent["apiKey"], scopes=["keys:read", "keys:write"])

    # when it tries to mint a key with balance:read
    response = await client.post(
        "/v1/api-keys", json={"label": "wider", "scopes": ["balance:read"]},
        headers=key_headers(limited["key"]),
    )

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_an_additional_key_cannot_expire_in_the_past(client):
    # given
    agent = await register_agent(client)

    # when
    response = await client.post(
        "/v1/api-keys", json={"label": "old", "expiresAt": "2001-01-01T00:00:00Z"},
        headers=key_headers(agent["apiKey"]),
    )

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "expires_at",
    # Valid RFC 3339, but after year 9999 or before year 1 once in UTC.
    ["9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00+14:00"],
)
async def test_an_expiry_with_no_utc_equivalent_is_a_validation_error(client, expires_at):
    # given
    agent = await register_agent(client)

    # when
    response = await client.post(
        "/v1/api-keys", json={"label": "far", "expiresAt": expires_at},
        headers=key_headers(agent["apiKey"]),
    )

    # then
    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert "expiresAt" in body["error"]


async def test_the_latest_utc_expiry_is_accepted(client):
    # given
    agent = await register_agent(client)

    # when
    created = await create_key(client, agent["apiKey"], expiresAt="9999-12-31T23:59:59Z")

    # then
    assert created["expiresAt"] == "9999-12-31T23:59:59Z"


async def test_a_key_without_keys_write_cannot_create_keys(client):
    # given a read-only key
    agent = await register_agent(client)
    reader = await create_key(client, agent["apiKey"], scopes=["balance:read"])

    # when it tries to mint another key
    response = await client.post(
        "/v1/api-keys", json={"label": "copy"}, headers=key_headers(reader["key"])
    )

    # then
    assert_error(response, 403, "FORBIDDEN")


# -- custom keys ---------------------------------------------------------------------------


async def test_a_custom_key_with_a_valid_checksum_is_accepted_and_works(client):
    # given
    wanted = custom_pk()

    # when
    response = await client.post("/v1/api-keys", json={"label": "custom", "key": wanted})

    # then
    assert response.status_code == 201, response.text
    assert response.json()["key"] == wanted
    info = await client.get("/v1/api-keys/info", headers=key_headers(wanted))
    assert info.status_code == 200, info.text


async def test_a_longer_custom_key_is_accepted(client):
    # when
    response = await client.post("/v1/api-keys", json={"key": custom_pk(random_chars=40)})

    # then
    assert response.status_code == 201, response.text


async def test_an_agent_can_add_a_custom_key(client):
    # given
    agent = await register_agent(client)
    wanted = custom_pk()

    # when
    response = await client.post(
        "/v1/api-keys", json={"label": "custom", "key": wanted},
        headers=key_headers(agent["apiKey"]),
    )

    # then
    assert response.status_code == 201, response.text
    me = await client.get("/v1/api-keys/info", headers=key_headers(wanted))
    assert me.json()["agentId"] == agent["agentId"]


@pytest.mark.parametrize(
    "bad_key",
    [
        pytest.param(custom_pk(random_chars=26), id="too-short"),
        pytest.param(with_checksum("ak_" + "a" * 27), id="wrong-prefix"),
        pytest.param(with_checksum("pk_" + "a" * 26 + "-"), id="not-base62"),
        pytest.param("pk_" + "a" * 33, id="no-checksum"),
        pytest.param("my-own-key", id="no-prefix"),
    ],
)
async def test_a_malformed_custom_key_is_a_validation_error(client, bad_key):
    # when
    response = await client.post("/v1/api-keys", json={"label": "custom", "key": bad_key})

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_a_custom_key_with_a_wrong_checksum_is_a_validation_error(client):
    # given a well-formed key whose last character is changed
    good = custom_pk()
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")

    # when
    response = await client.post("/v1/api-keys", json={"key": bad})

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "bad_key",
    [
        pytest.param("pk_" + "\u00e9" * 40, id="all-non-ascii"),
        pytest.param("pk_" + "a" * 20 + "\u00df" + "a" * 12, id="one-non-ascii"),
        pytest.param("pk_" + "\u0661" * 33, id="non-ascii-digits"),
    ],
)
async def test_a_custom_key_with_non_ascii_characters_is_a_validation_error(client, bad_key):
    # given an agent key, and no key at all
    agent = await register_agent(client)

    # when
    anonymous = await client.post("/v1/api-keys", json={"label": "custom", "key": bad_key})
    authenticated = await client.post(
        "/v1/api-keys", json={"label": "custom", "key": bad_key},
        headers=key_headers(agent["apiKey"]),
    )

    # then
    assert_error(anonymous, 400, "VALIDATION_ERROR")
    assert_error(authenticated, 400, "VALIDATION_ERROR")


async def test_a_custom_key_already_taken_is_a_conflict(client):
    # given
    wanted = custom_pk()
    first = await client.post("/v1/api-keys", json={"key": wanted})
    assert first.status_code == 201, first.text

    # when
    response = await client.post("/v1/api-keys", json={"key": wanted})

    # then
    assert_error(response, 409, "CONFLICT")


# -- GET /v1/api-keys/info -----------------------------------------------------------------


async def test_key_info_describes_the_calling_key(client):
    # given
    agent = await register_agent(client)

    # when
    response = await client.get("/v1/api-keys/info", headers=key_headers(agent["apiKey"]))

    # then
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == agent["keyId"]
    assert body["type"] == "agent"
    assert body["label"] == "default"
    assert "keys:write" in body["scopes"]
    assert body["createdAt"].endswith("Z")
    assert body["expiresAt"] is None
    assert body["period"] is None
    assert body["rateLimit"] == {"requestsPerMinute": 60, "requestsPerDay": None}
    assert body["lastUsedAt"].endswith("Z")
    assert agent["apiKey"] not in response.text


async def test_key_info_reports_an_expiry(client):
    # given
    agent = await register_agent(client)
    created = await create_key(client, agent["apiKey"], expiresAt="2099-06-01T12:00:00Z")

    # when
    response = await client.get("/v1/api-keys/info", headers=key_headers(created["key"]))

    # then
    assert response.json()["expiresAt"] == "2099-06-01T12:00:00Z"


# -- GET /v1/api-keys ----------------------------------------------------------------------


async def test_listing_keys_pages_with_limit_and_cursor(client):
    # given an agent with four keys
    agent = await register_agent(client)
    extra = [await create_key(client, agent["apiKey"], label=f"k{i}") for i in range(3)]
    all_ids = {agent["keyId"], *(k["id"] for k in extra)}
    headers = key_headers(agent["apiKey"])

    # when it pages through them three at a time
    first = await client.get("/v1/api-keys", params={"limit": 3}, headers=headers)
    cursor = first.json()["nextCursor"]
    second = await client.get("/v1/api-keys", params={"limit": 3, "cursor": cursor},
                              headers=headers)

    # then the pages split the keys without overlap and the last page says there is no more
    assert first.status_code == 200, first.text
    assert len(first.json()["data"]) == 3
    assert cursor
    assert second.status_code == 200, second.text
    assert len(second.json()["data"]) == 1
    assert second.json()["nextCursor"] is None
    seen = [k["id"] for k in first.json()["data"] + second.json()["data"]]
    assert sorted(seen) == sorted(all_ids)


async def test_listing_keys_shows_newest_first(client):
    # given
    agent = await register_agent(client)
    newer = await create_key(client, agent["apiKey"], label="newer")

    # when
    response = await client.get("/v1/api-keys", headers=key_headers(agent["apiKey"]))

    # then
    assert [k["id"] for k in response.json()["data"]] == [newer["id"], agent["keyId"]]


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 501}, {"limit": "ten"}, {"cursor": "not-a-cursor"}]
)
async def test_listing_keys_rejects_bad_paging_parameters(client, params):
    # given
    agent = await register_agent(client)

    # when
    response = await client.get(
        "/v1/api-keys", params=params, headers=key_headers(agent["apiKey"])
    )

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


async def test_listing_keys_filters_by_status(client):
    # given an agent with one revoked key
    agent = await register_agent(client)
    gone = await create_key(client, agent["apiKey"], label="gone")
    await client.delete(f"/v1/api-keys/{gone['id']}", headers=key_headers(agent["apiKey"]))

    # when
    response = await client.get(
        "/v1/api-keys", params={"status": "revoked"}, headers=key_headers(agent["apiKey"])
    )

    # then
    assert [k["id"] for k in response.json()["data"]] == [gone["id"]]


# -- DELETE /v1/api-keys/{id} --------------------------------------------------------------


async def test_revoking_a_key_returns_it_as_revoked(client):
    # given
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])

    # when
    response = await client.delete(
        f"/v1/api-keys/{extra['id']}", headers=key_headers(agent["apiKey"])
    )

    # then
    assert response.status_code == 200, response.text
    assert response.json()["id"] == extra["id"]
    assert response.json()["status"] == "revoked"
    assert response.json()["revokedAt"].endswith("Z")


async def test_a_revoked_key_is_refused_at_once(client):
    # given a key that has been used (so it is cached) and then revoked
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])
    assert (await client.get("/v1/api-keys/info", headers=key_headers(extra["key"]))).is_success
    await client.delete(f"/v1/api-keys/{extra['id']}", headers=key_headers(agent["apiKey"]))

    # when
    response = await client.get("/v1/api-keys/info", headers=key_headers(extra["key"]))

    # then
    body = assert_error(response, 401, "UNAUTHORIZED")
    assert "revoked" in body["error"]


async def test_revoking_an_unknown_key_is_not_found(client):
    # given
    agent = await register_agent(client)

    # when
    response = await client.delete(
        "/v1/api-keys/key_01J00000000000000000000000", headers=key_headers(agent["apiKey"])
    )

    # then
    assert_error(response, 404, "NOT_FOUND")


# -- POST /v1/api-keys/{id}/regenerate -----------------------------------------------------


async def test_regenerating_a_key_returns_a_new_secret_for_the_same_key(client):
    # given
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"], label="rotate me")

    # when
    response = await client.post(
        f"/v1/api-keys/{extra['id']}/regenerate", json={}, headers=key_headers(agent["apiKey"])
    )

    # then
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == extra["id"]
    assert body["key"].startswith("pk_")
    assert body["key"] != extra["key"]
    assert body["hint"].endswith(body["key"][-4:])
    info = await client.get("/v1/api-keys/info", headers=key_headers(body["key"]))
    assert info.json()["id"] == extra["id"]
    assert info.json()["label"] == "rotate me"


async def test_regenerating_a_revoked_key_is_a_conflict(client):
    # given
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])
    await client.delete(f"/v1/api-keys/{extra['id']}", headers=key_headers(agent["apiKey"]))

    # when
    response = await client.post(
        f"/v1/api-keys/{extra['id']}/regenerate", headers=key_headers(agent["apiKey"])
    )

    # then
    assert_error(response, 409, "CONFLICT")


@pytest.mark.parametrize("grace", [-1, 86_401, "soon"])
async def test_regenerating_with_an_out_of_range_grace_is_a_validation_error(client, grace):
    # given
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])

    # when
    response = await client.post(
        f"/v1/api-keys/{extra['id']}/regenerate", json={"gracePeriodSeconds": grace},
        headers=key_headers(agent["apiKey"]),
    )

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


# -- GET /v1/balance -----------------------------------------------------------------------


async def test_balance_of_a_new_agent_is_zero(client):
    # given
    agent = await register_agent(client)

    # when
    response = await client.get("/v1/balance", headers=key_headers(agent["apiKey"]))

    # then
    assert response.status_code == 200, response.text
    assert response.json() == {
        "credits_usd": 0.0, "total_spent": 0.0, "creditsMicros": 0, "spentMicros": 0,
        "heldMicros": 0,
    }


async def test_an_expiring_key_is_capped_by_its_creator_expiry(client):
    # given a key that expires in 2099 and creates a key without expiry
    agent = await register_agent(client)
    parent = await create_key(client, agent["apiKey"], scopes=["keys:read", "keys:write"],
                              expiresAt="2099-01-01T00:00:00Z")

    # when
    child = await create_key(client, parent["key"], label="child")

    # then the child cannot outlive its parent
    assert child["expiresAt"] == "2099-01-01T00:00:00Z"


async def test_created_key_expiry_keeps_sub_second_precision(client):
    # given
    agent = await register_agent(client)

    # when
    created = await create_key(client, agent["apiKey"], expiresAt=rfc3339_in(3600))

    # then
    assert created["expiresAt"].endswith("Z")


# -- races -----------------------------------------------------------------------------------


async def test_two_concurrent_requests_for_the_same_custom_key_give_one_conflict(client):
    # given
    wanted = custom_pk()

    # when two callers race for it
    responses = await asyncio.gather(
        client.post("/v1/api-keys", json={"key": wanted}),
        client.post("/v1/api-keys", json={"key": wanted}),
    )

    # then exactly one wins
    assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]


async def test_two_concurrent_signups_with_one_email_give_one_conflict(client):
    # given
    email = f"{unique()}@example.com"

    # when
    responses = await asyncio.gather(
        client.post("/v1/keys", json={"email": email}),
        client.post("/v1/keys", json={"email": email}),
    )

    # then
    assert sorted(r.status_code for r in responses) == [201, 409], [r.text for r in responses]
