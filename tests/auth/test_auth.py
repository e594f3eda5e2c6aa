"""The authentication matrix: each caller group x each way a credential can be wrong.

Groups: key holder by ``X-API-Key``, key holder by ``Authorization: Bearer``, platform by
``X-Master-Key``, operator by admin ``Bearer`` token. Every bad credential is a 401
UNAUTHORIZED with its own message; a valid credential of the wrong kind is a 403 FORBIDDEN.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from sqlalchemy import event

from app.main import create_app
from tests.factories import (
    assert_error,
    bearer,
    create_key,
    create_platform,
    key_headers,
    master_headers,
    register_agent,
    rfc3339_in,
    unique,
    well_formed_key,
)

# Long enough that a slow machine still issues the credential and uses it once before expiry.
EXPIRES_IN = 2.0

Maker = Callable[[Any, dict[str, str]], Awaitable[str]]


# -- how each group obtains a key in each state ----------------------------------------------


async def holder_key(client, admin_headers) -> str:
    return (await register_agent(client))["apiKey"]


async def revoked_holder_key(client, admin_headers) -> str:
    agent = await register_agent(client)
    extra = await create_key(client, agent["apiKey"])
    response = await client.delete(f"/v1/api-keys/{extra['id']}",
                                   headers=key_headers(agent["apiKey"]))
    assert response.status_code == 200, response.text
    return str(extra["key"])


async def expiring_holder_key(client, admin_headers) -> str:
    agent = await register_agent(client)
    return str((await create_key(client, agent["apiKey"], expiresAt=rfc3339_in(EXPIRES_IN)))["key"])


async def master_key(client, admin_headers) -> str:
    return str((await create_platform(client, admin_headers))["masterKey"])


async def _second_master_key(client, admin_headers, **body: Any) -> tuple[str, dict[str, Any]]:
    first = await master_key(client, admin_headers)
    response = await client.post("/v1/platform/master-keys", json=body,
                                 headers=master_headers(first))
    assert response.status_code == 201, response.text
    return first, response.json()


async def revoked_master_key(client, admin_headers) -> str:
    first, second = await _second_master_key(client, admin_headers)
    response = await client.delete(f"/v1/platform/master-keys/{second['id']}",
                                   headers=master_headers(first))
    assert response.status_code == 200, response.text
    return str(second["key"])


async def expiring_master_key(client, admin_headers) -> str:
    _, second = await _second_master_key(client, admin_headers, expiresAt=rfc3339_in(EXPIRES_IN))
    return str(second["key"])


async def _admin_token(client, admin_headers, **body: Any) -> dict[str, Any]:
    response = await client.post("/admin/v1/tokens", json={"label": "t", **body},
                                 headers=admin_headers)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def admin_token(client, admin_headers) -> str:
    return str((await _admin_token(client, admin_headers))["token"])


async def revoked_admin_token(client, admin_headers) -> str:
    token = await _admin_token(client, admin_headers)
    response = await client.post(f"/admin/v1/keys/{token['id']}/revoke", headers=admin_headers)
    assert response.status_code == 200, response.text
    return str(token["token"])


async def expiring_admin_token(client, admin_headers) -> str:
    token = await _admin_token(client, admin_headers, expiresAt=rfc3339_in(EXPIRES_IN))
    return str(token["token"])


@dataclass(frozen=True)
class Group:
    name: str
    route: str
    prefix: str
    present: Callable[[str], dict[str, str]]
    valid: Maker
    revoked: Maker
    expiring: Maker
    wrong_kind: Maker

    def __str__(self) -> str:
        return self.name


GROUPS = [
    Group("x-api-key", "/v1/api-keys/info", "ak", key_headers, holder_key, revoked_holder_key,
          expiring_holder_key, wrong_kind=master_key),
    Group("api-key-bearer", "/v1/api-keys/info", "pk", bearer, holder_key, revoked_holder_key,
          expiring_holder_key, wrong_kind=admin_token),
    Group("master-key", "/v1/platform/agents", "mk", master_headers, master_key,
          revoked_master_key, expiring_master_key, wrong_kind=holder_key),
    Group("admin-token", "/admin/v1/platforms", "adm", bearer, admin_token, revoked_admin_token,
          expiring_admin_token, wrong_kind=holder_key),
]

by_group = pytest.mark.parametrize("group", GROUPS, ids=str)


def unauthorized(response, reason: str) -> None:
    body = assert_error(response, 401, "UNAUTHORIZED")
    assert reason in body["error"].lower(), body


# -- the matrix ------------------------------------------------------------------------------


@by_group
async def test_a_valid_credential_is_accepted(client, admin_headers, group):
    # given
    secret = await group.valid(client, admin_headers)

    # when
    response = await client.get(group.route, headers=group.present(secret))

    # then
    assert response.status_code == 200, response.text


@by_group
async def test_a_missing_credential_is_unauthorized(client, group):
    # when
    response = await client.get(group.route)

    # then
    unauthorized(response, "missing")


@by_group
async def test_a_malformed_credential_is_unauthorized(client, group):
    # when
    response = await client.get(group.route, headers=group.present(f"{group.prefix}_short!"))

    # then
    unauthorized(response, "malformed")


@by_group
async def test_a_credential_with_a_bad_checksum_is_unauthorized(client, group):
    # given a well-formed key with one character of its checksum changed
    good = well_formed_key(group.prefix)
    mistyped = good[:-1] + ("x" if good[-1] != "x" else "y")

    # when
    response = await client.get(group.route, headers=group.present(mistyped))

    # then
    unauthorized(response, "checksum")


@by_group
async def test_an_unknown_credential_is_unauthorized(client, group):
    # when a well-formed key with a valid checksum that was never issued is used
    response = await client.get(group.route, headers=group.present(well_formed_key(group.prefix)))

    # then
    unauthorized(response, "unknown")


@by_group
async def test_a_revoked_credential_is_unauthorized(client, admin_headers, group):
    # given
    secret = await group.revoked(client, admin_headers)

    # when
    response = await client.get(group.route, headers=group.present(secret))

    # then
    unauthorized(response, "revoked")


@by_group
async def test_an_expired_credential_is_unauthorized(client, admin_headers, group):
    # given a credential that works until it expires a moment from now
    secret = await group.expiring(client, admin_headers)
    # Its expiry was computed before the request that created it was sent, so counting from
    # the answer waits at least EXPIRES_IN past it, however long setting up the holder took.
    issued = time.monotonic()
    before = await client.get(group.route, headers=group.present(secret))
    assert before.status_code == 200, before.text

    # when it is used after its expiry
    await asyncio.sleep(max(0.0, issued + EXPIRES_IN + 0.1 - time.monotonic()))
    response = await client.get(group.route, headers=group.present(secret))

    # then
    unauthorized(response, "expired")


@by_group
async def test_a_valid_credential_of_the_wrong_kind_is_forbidden(client, admin_headers, group):
    # given
    secret = await group.wrong_kind(client, admin_headers)

    # when
    response = await client.get(group.route, headers=group.present(secret))

    # then
    assert_error(response, 403, "FORBIDDEN")


@by_group
async def test_each_reason_for_a_401_has_its_own_message(client, admin_headers, group):
    # given credentials that are wrong in four different ways
    good = well_formed_key(group.prefix)
    attempts = {
        "missing": {},
        "malformed": group.present("garbage"),
        "checksum": group.present(good[:-1] + ("x" if good[-1] != "x" else "y")),
        "unknown": group.present(good),
        "revoked": group.present(await group.revoked(client, admin_headers)),
    }

    # when
    messages = {
        reason: (await client.get(group.route, headers=headers)).json()["error"]
        for reason, headers in attempts.items()
    }

    # then
    assert len(set(messages.values())) == len(messages), messages


# -- beyond the matrix -----------------------------------------------------------------------


@pytest.mark.parametrize("header", ["X-API-Key", "X-Master-Key", "Authorization"])
async def test_a_bad_checksum_is_refused_before_any_database_access(
    make_client, database_url, tmp_path, header
):
    # given an instance whose database is unreachable
    unreachable = (
        f"sqlite+aiosqlite:///{tmp_path}/no-such-dir/passgate.db"
        if database_url.startswith("sqlite")
        else "postgresql+asyncpg://postgres@127.0.0.1:1/nowhere"
    )
    client = await make_client(database_url=unreachable)
    prefix = {"X-API-Key": "ak", "X-Master-Key": "mk", "Authorization": "adm"}[header]
    route = {"X-API-Key": "/v1/api-keys/info", "X-Master-Key": "/v1/platform/agents",
             "Authorization": "/admin/v1/platforms"}[header]
    good = well_formed_key(prefix)
    mistyped = good[:-1] + ("x" if good[-1] != "x" else "y")
    value = (lambda k: f"Bearer {k}") if header == "Authorization" else (lambda k: k)

    # when a mistyped key and a well-formed unknown key are presented
    refused = await client.get(route, headers={header: value(mistyped)})
    looked_up = await client.get(route, headers={header: value(good)})

    # then the mistyped one is a clean 401 (no lookup), the other needed the database: 503
    unauthorized(refused, "checksum")
    assert_error(looked_up, 503, "SERVICE_UNAVAILABLE")


async def test_an_admin_token_is_refused_on_an_x_api_key_route(client, admin_headers):
    # given an admin token in X-API-Key
    token = await admin_token(client, admin_headers)

    # when
    response = await client.get("/v1/api-keys/info", headers=key_headers(token))

    # then
    assert_error(response, 403, "FORBIDDEN")


async def test_a_master_key_is_not_accepted_as_an_admin_token(client, admin_headers):
    # given
    mk = await master_key(client, admin_headers)

    # when
    response = await client.get("/admin/v1/platforms", headers=bearer(mk))

    # then
    assert_error(response, 403, "FORBIDDEN")


async def test_the_configured_admin_token_is_not_an_api_key(client, admin_headers):
    # when the operator's environment token is presented as a key holder
    response = await client.get("/v1/api-keys/info", headers=admin_headers)

    # then
    assert_error(response, 401, "UNAUTHORIZED")


async def test_an_admin_route_without_a_configured_token_refuses_every_bearer(make_client):
    # given an instance with no PASSGATE_ADMIN_TOKEN
    client = await make_client(admin_token=None)

    # when
    response = await client.get("/admin/v1/platforms", headers=bearer("anything"))

    # then
    assert_error(response, 401, "UNAUTHORIZED")


async def test_a_key_lacking_the_scope_of_a_route_is_forbidden(client):
    # given a key that may only read balances
    agent = await register_agent(client)
    reader = await create_key(client, agent["apiKey"], scopes=["balance:read"])

    # when it lists keys
    response = await client.get("/v1/api-keys", headers=key_headers(reader["key"]))

    # then
    body = assert_error(response, 403, "FORBIDDEN")
    assert "keys:read" in body["error"]


async def test_a_key_with_the_scope_of_a_route_is_allowed(client):
    # given a key that may only read balances
    agent = await register_agent(client)
    reader = await create_key(client, agent["apiKey"], scopes=["balance:read"])

    # when it reads its balance
    response = await client.get("/v1/balance", headers=key_headers(reader["key"]))

    # then
    assert response.status_code == 200, response.text


async def test_a_gateway_key_cannot_manage_keys(client):
    # given an e-mail sign-up key (gateway only)
    signup = await client.post("/v1/keys", json={"email": f"{unique()}@example.com"})
    gw = signup.json()["api_key"]

    # when
    response = await client.get("/v1/api-keys", headers=key_headers(gw))

    # then
    assert_error(response, 403, "FORBIDDEN")


async def test_x_api_key_wins_over_an_authorization_header(client):
    # given
    agent = await register_agent(client)

    # when both are sent and X-API-Key is the good one
    response = await client.get(
        "/v1/api-keys/info",
        headers={"X-API-Key": agent["apiKey"], "Authorization": "Bearer nonsense"},
    )

    # then
    assert response.status_code == 200, response.text


# -- tenants ---------------------------------------------------------------------------------


async def test_a_fleet_key_under_its_own_tenant_is_allowed(client, platform):
    # given
    fleet = await _fleet_agent(client, platform)

    # when
    response = await client.get(
        "/v1/api-keys/info",
        headers={**key_headers(fleet["apiKey"]), "X-Tenant-ID": platform["platform"]["id"]},
    )

    # then
    assert response.status_code == 200, response.text


async def test_a_fleet_key_under_another_tenant_is_forbidden(client, platform, other_platform):
    # given
    fleet = await _fleet_agent(client, platform)

    # when
    response = await client.get(
        "/v1/api-keys/info",
        headers={**key_headers(fleet["apiKey"]), "X-Tenant-ID": other_platform["platform"]["id"]},
    )

    # then
    assert_error(response, 403, "FORBIDDEN")


async def test_a_self_registered_key_under_any_tenant_is_forbidden(client, platform):
    # given an agent that belongs to no platform
    agent = await register_agent(client)

    # when
    response = await client.get(
        "/v1/api-keys/info",
        headers={**key_headers(agent["apiKey"]), "X-Tenant-ID": platform["platform"]["id"]},
    )

    # then
    assert_error(response, 403, "FORBIDDEN")


async def test_a_master_key_under_another_tenant_is_forbidden(client, platform, other_platform):
    # when
    response = await client.get(
        "/v1/platform/agents",
        headers={**master_headers(platform["masterKey"]),
                 "X-Tenant-ID": other_platform["platform"]["id"]},
    )

    # then
    assert_error(response, 403, "FORBIDDEN")


async def _fleet_agent(client, platform) -> dict[str, Any]:
    response = await client.post("/v1/platform/agents", json={"name": "fleet"},
                                 headers=master_headers(platform["masterKey"]))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


# -- where the check runs ------------------------------------------------------------------------


async def test_an_unauthenticated_call_is_refused_before_its_body_is_read(client):
    # when a body that would not validate is sent without a key
    response = await client.post("/v1/wallets/challenge", json={"address": 12})

    # then the caller learns only that a key is missing
    unauthorized(response, "missing api key")


async def test_a_key_without_the_scope_is_refused_before_its_body_is_read(client):
    # given a read-only key
    agent = await register_agent(client)
    reader = await create_key(client, agent["apiKey"], scopes=["keys:read"])

    # when it sends an invalid body to a route that needs another scope
    response = await client.post("/v1/wallets/challenge", json={"address": 12},
                                 headers=key_headers(reader["key"]))

    # then
    assert_error(response, 403, "FORBIDDEN")


async def test_a_nul_character_is_refused_on_a_keyed_route_before_the_key_is_checked(client):
    # when (no key at all: the NUL check comes first on every route)
    response = await client.delete("/v1/api-keys/key_%00")

    # then
    assert_error(response, 400, "VALIDATION_ERROR")


def _count_key_lookups(engine) -> list[str]:
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        if "secret_hash" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", before)
    return seen


@asynccontextmanager
async def another_process(settings):
    """Another API instance served in this event loop, so a burst really is concurrent (the
    test client hands requests to its app one at a time)."""
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.lifespan(), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield c, app.state["runtime"]


async def test_a_burst_on_a_key_new_to_a_process_reads_the_database_once(client, settings_factory):
    # given a key another process issued, and a process that has never seen it
    agent = await register_agent(client)
    async with another_process(settings_factory()) as (fresh, runtime):
        lookups = _count_key_lookups(runtime.engine)

        # when twenty requests with it arrive at once
        responses = await asyncio.gather(*(
            fresh.get("/v1/api-keys/info", headers=key_headers(agent["apiKey"]))
            for _ in range(20)
        ))

    # then all are served from one database read
    assert {r.status_code for r in responses} == {200}
    assert len(lookups) == 1


async def test_a_hot_key_is_refreshed_once_in_the_background(client, settings_factory):
    agent = await register_agent(client)
    headers = key_headers(agent["apiKey"])
    async with another_process(settings_factory(key_cache_seconds=0.4)) as (fresh, runtime):
        # given a process that cached a key over half a TTL ago
        assert (await fresh.get("/v1/api-keys/info", headers=headers)).status_code == 200
        lookups = _count_key_lookups(runtime.engine)
        await asyncio.sleep(0.25)

        # when a burst arrives
        responses = await asyncio.gather(*(
            fresh.get("/v1/api-keys/info", headers=headers) for _ in range(20)
        ))

        # then every request is served from the cache
        assert {r.status_code for r in responses} == {200}
    # ... and one re-read ran behind them (shutting the process down waits for it)
    assert len(lookups) == 1
