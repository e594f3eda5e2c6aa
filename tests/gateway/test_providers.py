"""Providers: configured ones, admin-managed ones, the public catalog, and secret handling."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import AsyncTestClient
from pydantic import ValidationError
from sqlalchemy import delete
from sqlmodel import col, select

from app.db.models.gateway import GatewayProvider
from app.main import create_app
from app.settings import Settings
from tests.factories import assert_error, key_headers
from tests.gateway.conftest import GatewayFactory
from tests.gateway.helpers import PRICE, UPSTREAM_SECRET, balance, database, signup

Client = AsyncTestClient[Litestar]
ADMIN_SECRET = "sk-admin-managed-upstream-key"


@pytest.fixture(autouse=True)
async def forget_admin_providers(
    settings_factory: Callable[..., Settings],
) -> AsyncIterator[None]:
    """Stored providers outlive the app that made them; other tests' catalogs must not see them."""
    yield
    async with database(settings_factory()) as sessions, sessions() as session:
        await session.execute(delete(GatewayProvider))
        await session.commit()


def new_provider(upstream: str, name: str = "managed", **fields: Any) -> dict[str, Any]:
    return {
        "name": name,
        "baseUrl": upstream,
        "priceMicros": 25_000,
        "description": "added at run time",
        "headers": {"X-Admin-Key": ADMIN_SECRET},
        **fields,
    }


async def test_the_public_catalog_lists_names_and_prices_only(gw: Client) -> None:
    response = await gw.get("/v1/providers")

    assert response.status_code == 200
    echo = next(p for p in response.json()["data"] if p["name"] == "echo")
    assert echo == {
        "name": "echo",
        "description": "test upstream",
        "priceMicros": PRICE,
        "priceUsd": 0.01,
        "modelPrices": {"big-model": 100_000},
        "routePrices": {"/echo/premium": 50_000},
    }
    assert UPSTREAM_SECRET not in response.text
    assert "127.0.0.1" not in response.text


async def test_an_admin_managed_provider_is_usable_at_once(
    gw: Client, admin_headers: dict[str, str], upstream_url: str
) -> None:
    # When the operator adds a provider
    created = await gw.post(
        "/admin/v1/providers", json=new_provider(upstream_url), headers=admin_headers
    )

    # Then it is shown without its header values
    assert created.status_code == 201, created.text
    view = created.json()
    assert view["source"] == "admin"
    assert view["headerNames"] == ["X-Admin-Key"]
    assert ADMIN_SECRET not in created.text
    # And listed in the catalog, and callable with its own credentials injected
    catalog = (await gw.get("/v1/providers")).json()["data"]
    assert any(p["name"] == "managed" and p["priceMicros"] == 25_000 for p in catalog)
    key = await signup(gw)
    response = await gw.get("/v1/gateway/managed/echo", headers=key_headers(key))
    assert response.status_code == 200, response.text
    assert ["x-admin-key", ADMIN_SECRET] in response.json()["headers"]
    assert (await balance(gw, key))["spentMicros"] == 25_000


async def test_header_values_are_sealed_at_rest_and_absent_from_the_audit_log(
    gw: Client, admin_headers: dict[str, str], upstream_url: str
) -> None:
    created = await gw.post(
        "/admin/v1/providers", json=new_provider(upstream_url, "sealed"), headers=admin_headers
    )
    assert created.status_code == 201, created.text

    async with database(gw.app.state.runtime.settings) as sessions, sessions() as session:
        row = (
            await session.exec(select(GatewayProvider).where(col(GatewayProvider.name) == "sealed"))
        ).one()
    assert ADMIN_SECRET not in json.dumps(row.headers_sealed)
    log = await gw.get("/admin/v1/audit-log", headers=admin_headers)
    assert "provider.create" in log.text
    assert ADMIN_SECRET not in log.text


async def test_changes_and_deletion_apply_to_the_next_call(
    gw: Client, admin_headers: dict[str, str], upstream_url: str
) -> None:
    await gw.post(
        "/admin/v1/providers", json=new_provider(upstream_url, "changing"), headers=admin_headers
    )
    key = await signup(gw)

    patched = await gw.patch(
        "/admin/v1/providers/changing", json={"priceMicros": 7}, headers=admin_headers
    )
    assert patched.status_code == 200, patched.text
    assert patched.json()["headerNames"] == ["X-Admin-Key"]  # headers kept
    call = await gw.get("/v1/gateway/changing/echo", headers=key_headers(key))
    assert call.headers["x-gateway-cost-micros"] == "7"
    assert ["x-admin-key", ADMIN_SECRET] in call.json()["headers"]

    disabled = await gw.patch(
        "/admin/v1/providers/changing", json={"enabled": False}, headers=admin_headers
    )
    assert disabled.json()["enabled"] is False
    assert_error(
        await gw.get("/v1/gateway/changing/echo", headers=key_headers(key)), 404, "NOT_FOUND"
    )

    deleted = await gw.delete("/admin/v1/providers/changing", headers=admin_headers)
    assert deleted.status_code == 200, deleted.text
    assert_error(
        await gw.get("/admin/v1/providers/changing", headers=admin_headers), 404, "NOT_FOUND"
    )


async def test_another_process_sees_admin_changes_within_its_cache_time(
    make_gateway: GatewayFactory, admin_headers: dict[str, str], upstream_url: str
) -> None:
    first = await make_gateway()
    second = await make_gateway(gateway_provider_cache_seconds=0)
    key = await signup(first)
    assert_error(
        await second.get("/v1/gateway/elsewhere/echo", headers=key_headers(key)), 404, "NOT_FOUND"
    )

    await first.post(
        "/admin/v1/providers", json=new_provider(upstream_url, "elsewhere"), headers=admin_headers
    )

    assert (
        await second.get("/v1/gateway/elsewhere/echo", headers=key_headers(key))
    ).status_code == 200


async def test_configured_providers_cannot_be_changed_through_the_admin_api(
    gw: Client, admin_headers: dict[str, str], upstream_url: str
) -> None:
    for response in (
        await gw.post(
            "/admin/v1/providers", json=new_provider(upstream_url, "echo"), headers=admin_headers
        ),
        await gw.patch("/admin/v1/providers/echo", json={"priceMicros": 1}, headers=admin_headers),
        await gw.delete("/admin/v1/providers/echo", headers=admin_headers),
    ):
        assert_error(response, 409, "CONFLICT")
    view = (await gw.get("/admin/v1/providers/echo", headers=admin_headers)).json()
    assert view["source"] == "config"
    assert view["priceMicros"] == PRICE
    assert view["headerNames"] == ["Authorization", "X-Upstream-Key"]
    assert UPSTREAM_SECRET not in json.dumps(view)


async def test_a_configured_provider_shadows_a_stored_one_of_the_same_name(
    make_gateway: GatewayFactory,
    admin_headers: dict[str, str],
    upstream_url: str,
    providers: list[dict[str, Any]],
) -> None:
    # Given a stored provider "later", and then a deployment that configures "later" too
    before = await make_gateway()
    await before.post(
        "/admin/v1/providers", json=new_provider(upstream_url, "later"), headers=admin_headers
    )
    configured = {**providers[0], "name": "later", "price_micros": 3}
    after = await make_gateway(providers=[*providers, configured])

    # Then the configured one is used, and the stored one is listed as shadowed
    key = await signup(after)
    call = await after.get("/v1/gateway/later/echo", headers=key_headers(key))
    assert call.headers["x-gateway-cost-micros"] == "3"
    listed = (
        await after.get("/admin/v1/providers", params={"limit": 500}, headers=admin_headers)
    ).json()["data"]
    later = [(p["source"], p["shadowed"]) for p in listed if p["name"] == "later"]
    assert later == [("config", False), ("admin", True)]
    await after.delete("/admin/v1/providers/later", headers=admin_headers)  # 409: configured


async def test_duplicate_and_invalid_providers_are_refused_without_echoing_secrets(
    gw: Client, admin_headers: dict[str, str], upstream_url: str
) -> None:
    ok = await gw.post(
        "/admin/v1/providers", json=new_provider(upstream_url, "twice"), headers=admin_headers
    )
    assert ok.status_code == 201
    assert_error(
        await gw.post(
            "/admin/v1/providers", json=new_provider(upstream_url, "twice"), headers=admin_headers
        ),
        409,
        "CONFLICT",
    )

    for bad in (
        new_provider("ftp://example.com", "bad-scheme"),
        new_provider(upstream_url, "bad-header", headers={"X-Key": f"{ADMIN_SECRET}\r\nX: y"}),
        new_provider(upstream_url, "bad-route", routePrices={"no-slash": 1}),
        new_provider(upstream_url, "Bad Name"),
    ):
        response = await gw.post("/admin/v1/providers", json=bad, headers=admin_headers)
        assert_error(response, 400, "VALIDATION_ERROR")
        assert ADMIN_SECRET not in response.text


async def test_the_admin_list_pages_by_name(
    gw: Client, admin_headers: dict[str, str], upstream_url: str
) -> None:
    for name in ("page-a", "page-b", "page-c"):
        await gw.post(
            "/admin/v1/providers", json=new_provider(upstream_url, name), headers=admin_headers
        )
    names: list[str] = []
    cursor = None
    for _ in range(100):
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await gw.get("/admin/v1/providers", params=params, headers=admin_headers)).json()
        names.extend(p["name"] for p in page["data"])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert names == sorted(names)
    assert {"echo", "down", "free", "page-a", "page-b", "page-c"} <= set(names)


# -- configuration -------------------------------------------------------------------------


def test_providers_load_from_a_json_or_toml_file_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    toml = tmp_path / "providers.toml"
    toml.write_text(
        '[[providers]]\nname = "alpha"\nbase_url = "https://alpha.example/v1/"\n'
        'price_micros = 100\n[providers.headers]\nAuthorization = "Bearer from-file"\n'
        '[[providers]]\nname = "beta"\nbase_url = "https://beta.example"\nprice_micros = 5\n'
    )
    as_json = tmp_path / "providers.json"
    as_json.write_text(
        json.dumps([{"name": "gamma", "base_url": "http://g.example", "price_micros": 1}])
    )
    monkeypatch.setenv(
        "PASSGATE_PROVIDERS",
        json.dumps([{"name": "beta", "base_url": "https://beta-env.example", "price_micros": 9}]),
    )

    from_toml = Settings(providers_file=toml)
    from_json = Settings(providers_file=as_json)

    by_name = {p.name: p for p in from_toml.providers}
    assert by_name["alpha"].base_url == "https://alpha.example/v1"
    assert by_name["alpha"].headers["Authorization"].get_secret_value() == "Bearer from-file"
    assert "from-file" not in repr(from_toml)
    assert by_name["beta"].price_micros == 9  # the environment wins by name
    assert {p.name for p in from_json.providers} == {"gamma", "beta"}


def test_invalid_provider_settings_fail_at_startup() -> None:
    with pytest.raises(ValidationError):
        Settings(providers=[{"name": "x", "base_url": "not a url", "price_micros": 1}])
    with pytest.raises(ValidationError):
        Settings(providers=[{"name": "x", "base_url": "http://a", "price_micros": -1}])
    with pytest.raises(ValidationError):
        Settings(
            providers=[
                {"name": "x", "base_url": "http://a", "price_micros": 1},
                {"name": "x", "base_url": "http://b", "price_micros": 1},
            ]
        )


def test_a_provider_that_may_answer_after_its_reservation_expires_fails_at_startup() -> None:
    # A reservation swept while its call still waits would make that call free.
    provider = {"name": "slow", "base_url": "http://a", "price_micros": 1,
                "timeout_seconds": 120}
    with pytest.raises(ValidationError, match="must end before a reservation expires"):
        Settings(providers=[provider], gateway_reservation_ttl_seconds=120)
    Settings(providers=[provider], gateway_reservation_ttl_seconds=130)


async def test_an_admin_provider_that_may_answer_after_its_reservation_expires_is_refused(
    settings_factory, providers, admin_headers: dict[str, str], upstream_url: str
) -> None:
    settings = settings_factory(providers=providers, gateway_reservation_ttl_seconds=100)
    async with AsyncTestClient(app=create_app(settings)) as admin:
        slow = await admin.post("/admin/v1/providers", headers=admin_headers,
                                json=new_provider(upstream_url, "slow", timeoutSeconds=99))
        quick = await admin.post("/admin/v1/providers", headers=admin_headers,
                                 json=new_provider(upstream_url, "quick", timeoutSeconds=60))
        stretched = await admin.patch("/admin/v1/providers/quick", headers=admin_headers,
                                      json={"timeoutSeconds": 96})

    body = assert_error(slow, 400, "VALIDATION_ERROR")
    assert body["details"][0]["key"] == "timeoutSeconds"
    assert quick.status_code == 201, quick.text
    assert_error(stretched, 400, "VALIDATION_ERROR")
