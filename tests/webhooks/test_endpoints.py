"""The webhook endpoint API: CRUD, validation, the SSRF guard, tenancy, secrets, audit."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from sqlmodel import col, select

from app.crypto import SecretBox
from app.db.engine import create_engine, session_factory
from app.db.models.webhooks import WebhookEndpoint
from app.main import create_app
from app.settings import Settings
from tests.conftest import PEPPER
from tests.factories import assert_error, master_headers
from tests.webhooks.conftest import create_endpoint, new_platform
from webhooks.signing import parse_secret

PUBLIC_URL = "http://127.0.0.1:9/hook"  # allowlisted in tests; nothing is sent to it here


@pytest.fixture
async def platform(api: AsyncTestClient[Litestar], admin_headers: dict[str, str]) -> dict[str, str]:
    return await new_platform(api, admin_headers)


async def test_creating_an_endpoint_returns_its_secret_once(
    api: AsyncTestClient[Litestar], platform: dict[str, str]
) -> None:
    headers = master_headers(platform["key"])

    created = await create_endpoint(api, platform["key"], PUBLIC_URL, description="orders",
                                    eventTypes=["payment.settled", "key.created"])

    assert created["id"].startswith("whe_")
    assert len(parse_secret(created["secret"])) == 32
    assert created["warning"]
    assert created["platformId"] == platform["id"]
    assert created["eventTypes"] == ["payment.settled", "key.created"]
    assert created["enabled"] is True
    assert created["createdAt"].endswith("Z")
    shown = (await api.get(f"/v1/platform/webhooks/{created['id']}", headers=headers)).json()
    listed = (await api.get("/v1/platform/webhooks", headers=headers)).json()
    assert "secret" not in shown
    assert [e["id"] for e in listed["data"]] == [created["id"]]
    assert created["secret"] not in str(listed)


async def test_the_secret_is_stored_sealed_not_in_clear(
    api: AsyncTestClient[Litestar], platform: dict[str, str], wh_settings: Settings
) -> None:
    created = await create_endpoint(api, platform["key"], PUBLIC_URL)

    engine = create_engine(wh_settings)
    try:
        async with session_factory(engine)() as session:
            row = (await session.exec(
                select(WebhookEndpoint).where(col(WebhookEndpoint.id) == created["id"])
            )).one()
    finally:
        await engine.dispose()
    secret = created["secret"]
    assert secret not in row.secret_sealed
    assert secret.removeprefix("whsec_") not in row.secret_sealed
    assert SecretBox(PEPPER).open(row.secret_sealed, context=row.id) == secret


async def test_endpoints_can_be_updated_and_deleted_and_every_change_is_audited(
    api: AsyncTestClient[Litestar], platform: dict[str, str], admin_headers: dict[str, str]
) -> None:
    headers = master_headers(platform["key"])
    created = await create_endpoint(api, platform["key"], PUBLIC_URL)
    path = f"/v1/platform/webhooks/{created['id']}"

    patched = await api.patch(path, json={"description": "billing",
                                          "eventTypes": ["credits.low"]}, headers=headers)
    rotated = await api.post(f"{path}/rotate-secret", headers=headers)
    deleted = await api.delete(path, headers=headers)

    assert patched.status_code == 200, patched.text
    assert patched.json()["description"] == "billing"
    assert patched.json()["eventTypes"] == ["credits.low"]
    assert rotated.status_code == 200
    assert rotated.json()["previousSecretExpiresAt"]
    assert deleted.status_code == 200
    assert_error(await api.get(path, headers=headers), 404, "NOT_FOUND")
    log = (await api.get("/admin/v1/audit-log", params={"targetId": created["id"]},
                         headers=admin_headers)).json()["data"]
    assert [e["action"] for e in reversed(log)] == [
        "webhook_endpoint.create", "webhook_endpoint.update", "webhook_endpoint.rotate_secret",
        "webhook_endpoint.delete",
    ]
    update = next(e for e in log if e["action"] == "webhook_endpoint.update")
    assert update["actorType"] == "platform"
    assert update["actorId"]
    assert update["before"]["description"] is None
    assert update["after"]["description"] == "billing"
    assert all(created["secret"] not in str(e) and rotated.json()["secret"] not in str(e)
               for e in log)


async def test_a_platform_cannot_see_or_touch_another_platforms_endpoint(
    api: AsyncTestClient[Litestar], platform: dict[str, str], admin_headers: dict[str, str]
) -> None:
    other = await new_platform(api, admin_headers)
    created = await create_endpoint(api, platform["key"], PUBLIC_URL)
    path = f"/v1/platform/webhooks/{created['id']}"
    intruder = master_headers(other["key"])

    for response in (
        await api.get(path, headers=intruder),
        await api.patch(path, json={"enabled": False}, headers=intruder),
        await api.delete(path, headers=intruder),
        await api.post(f"{path}/rotate-secret", headers=intruder),
        await api.post(f"{path}/test", headers=intruder),
        await api.get(f"{path}/deliveries", headers=intruder),
        await api.post(f"{path}/replay", json={"since": "2026-01-01T00:00:00Z"},
                       headers=intruder),
    ):
        assert_error(response, 404, "NOT_FOUND")
    listed = (await api.get("/v1/platform/webhooks", headers=intruder)).json()
    assert listed["data"] == []


@pytest.mark.parametrize(
    "body",
    [
        {"url": PUBLIC_URL, "eventTypes": ["no.such.event"]},
        {"url": PUBLIC_URL, "eventTypes": ["webhook.endpoint_disabled"]},  # operator only
        {"url": PUBLIC_URL, "unknown": 1},
        {"url": ""},
        {"url": "ftp://127.0.0.1/hook"},
        {"url": "http://user:pass@127.0.0.1/hook"},
        {"url": "not a url"},
        {},
    ],
)
async def test_invalid_endpoints_are_validation_errors(
    api: AsyncTestClient[Litestar], platform: dict[str, str], body: dict[str, Any]
) -> None:
    response = await api.post("/v1/platform/webhooks", json=body,
                              headers=master_headers(platform["key"]))

    assert_error(response, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]:8080/hook",
        "http://192.168.1.10/hook",
        "http://[fd00:ec2::254]/",
        "http://0.0.0.0/",
        "http://private.example.test/hook",  # resolves to 10.1.2.3 (fake DNS below)
    ],
)
async def test_urls_reaching_private_addresses_are_refused(
    api: AsyncTestClient[Litestar], platform: dict[str, str], url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def fake_dns(host: str, port: int) -> list[ipaddress.IPv4Address]:
        assert host == "private.example.test"
        return [ipaddress.IPv4Address("10.1.2.3")]

    monkeypatch.setattr("webhooks.ssrf.resolve_host", fake_dns)

    response = await api.post("/v1/platform/webhooks", json={"url": url},
                              headers=master_headers(platform["key"]))

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert "10.1.2.3" not in body["error"]  # the resolved address is never disclosed


async def test_a_deprecated_site_local_ipv6_address_is_refused(
    api: AsyncTestClient[Litestar], platform: dict[str, str]
) -> None:
    response = await api.post("/v1/platform/webhooks", json={"url": "http://[fec0::1]/hook"},
                              headers=master_headers(platform["key"]))

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert "site-local" in body["error"]


async def test_loopback_is_refused_without_the_allowlist(
    wh_settings_factory: Callable[..., Settings], admin_headers: dict[str, str]
) -> None:
    settings = wh_settings_factory(webhook_allowed_cidrs=[])
    async with AsyncTestClient(app=create_app(settings)) as api:
        platform = await new_platform(api, admin_headers)

        response = await api.post("/v1/platform/webhooks", json={"url": PUBLIC_URL},
                                  headers=master_headers(platform["key"]))

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_changing_the_url_to_a_private_address_is_refused(
    api: AsyncTestClient[Litestar], platform: dict[str, str]
) -> None:
    created = await create_endpoint(api, platform["key"], PUBLIC_URL)

    response = await api.patch(f"/v1/platform/webhooks/{created['id']}",
                               json={"url": "http://10.0.0.1/hook"},
                               headers=master_headers(platform["key"]))

    assert_error(response, 400, "VALIDATION_ERROR")


async def test_the_operator_manages_its_own_endpoints_and_sees_everyones(
    api: AsyncTestClient[Litestar], platform: dict[str, str], admin_headers: dict[str, str]
) -> None:
    platform_endpoint = await create_endpoint(api, platform["key"], PUBLIC_URL)
    response = await api.post("/admin/v1/webhooks", headers=admin_headers, json={
        "url": PUBLIC_URL, "eventTypes": ["webhook.endpoint_disabled"]})
    assert response.status_code == 201, response.text
    operator = response.json()
    try:
        assert operator["platformId"] is None
        operators = (await api.get("/admin/v1/webhooks", params={"operator": "true"},
                                   headers=admin_headers)).json()["data"]
        of_platform = (await api.get("/admin/v1/webhooks", params={"platformId": platform["id"]},
                                     headers=admin_headers)).json()["data"]
        assert operator["id"] in [e["id"] for e in operators]
        assert platform_endpoint["id"] not in [e["id"] for e in operators]
        assert [e["id"] for e in of_platform] == [platform_endpoint["id"]]
        # The operator can re-enable (or otherwise change) any endpoint
        patched = await api.patch(f"/admin/v1/webhooks/{platform_endpoint['id']}",
                                  json={"enabled": False}, headers=admin_headers)
        assert patched.json()["disabledReason"] == "manual"
        # A platform cannot reach operator endpoints
        assert_error(await api.get(f"/v1/platform/webhooks/{operator['id']}",
                                   headers=master_headers(platform["key"])), 404, "NOT_FOUND")
    finally:
        await api.delete(f"/admin/v1/webhooks/{operator['id']}", headers=admin_headers)


async def test_replay_since_must_be_an_aware_timestamp(
    api: AsyncTestClient[Litestar], platform: dict[str, str]
) -> None:
    created = await create_endpoint(api, platform["key"], PUBLIC_URL)
    path = f"/v1/platform/webhooks/{created['id']}/replay"
    headers = master_headers(platform["key"])

    for body in ({"since": "2026-01-01T00:00:00"}, {"since": "yesterday"}, {}):
        assert_error(await api.post(path, json=body, headers=headers), 400, "VALIDATION_ERROR")


@pytest.mark.parametrize(
    # Valid RFC 3339, but before year 1 or after year 9999 once in UTC.
    "since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00"],
)
async def test_replay_since_with_no_utc_equivalent_is_a_validation_error(
    api: AsyncTestClient[Litestar], platform: dict[str, str], since: str
) -> None:
    created = await create_endpoint(api, platform["key"], PUBLIC_URL)

    response = await api.post(f"/v1/platform/webhooks/{created['id']}/replay",
                              json={"since": since}, headers=master_headers(platform["key"]))

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert "since" in body["error"]


async def test_an_owner_has_a_bounded_number_of_endpoints(
    wh_settings_factory: Callable[..., Settings], admin_headers: dict[str, str]
) -> None:
    async with AsyncTestClient(app=create_app(wh_settings_factory(webhook_max_endpoints=2))) as api:
        platform = await new_platform(api, admin_headers)
        for _ in range(2):
            await create_endpoint(api, platform["key"], PUBLIC_URL)

        response = await api.post("/v1/platform/webhooks", json={"url": PUBLIC_URL},
                                  headers=master_headers(platform["key"]))

    assert_error(response, 409, "CONFLICT")


async def test_every_webhook_route_is_in_the_openapi_schema(
    api: AsyncTestClient[Litestar],
) -> None:
    paths = (await api.get("/schema/openapi.json")).json()["paths"]

    for path in ("/v1/platform/webhooks", "/v1/platform/webhooks/{endpoint_id}",
                 "/v1/platform/webhooks/{endpoint_id}/rotate-secret",
                 "/v1/platform/webhooks/{endpoint_id}/test",
                 "/v1/platform/webhooks/{endpoint_id}/deliveries",
                 "/v1/platform/webhooks/{endpoint_id}/replay",
                 "/admin/v1/webhooks", "/admin/v1/webhooks/messages/{message_id}/replay"):
        assert path in paths, path
