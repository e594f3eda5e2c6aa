"""What the discovery listing shows follows what is on sale: providers added, repriced,
disabled and deleted through the admin API; no per-call payments without a signer; nothing
without payments."""

from __future__ import annotations

from typing import Any

from litestar.testing import AsyncTestClient

from app.main import create_app
from tests.bazaar.conftest import CONFIGURED

LISTING = "/v1/discovery/resources"


async def _listed(api: Any, name: str) -> list[dict[str, Any]]:
    response = await api.get(LISTING, params={"resource": f"/v1/gateway/{name}", "limit": 100})
    assert response.status_code == 200, response.text
    return [item for item in response.json()["items"]
            if item["resource"].endswith(f"/v1/gateway/{name}")]


async def test_an_admin_provider_appears_changes_and_disappears(api, admin_headers, unique_name):
    # given a provider added through the admin API
    created = await api.post("/admin/v1/providers", headers=admin_headers, json={
        "name": unique_name, "baseUrl": "http://127.0.0.1:9/", "priceMicros": 7000,
        "headers": {"Authorization": "Bearer upstream-secret"},
    })
    assert created.status_code == 201, created.text

    # then it is listed at its price, with its last change, and no injected header
    [item] = await _listed(api, unique_name)
    assert [offer["amount"] for offer in item["accepts"]] == ["7000"]
    assert item["lastUpdated"] == created.json()["updatedAt"]
    assert "upstream-secret" not in str(item)

    # when repriced: the new price
    patched = await api.patch(f"/admin/v1/providers/{unique_name}", headers=admin_headers,
                              json={"priceMicros": 8000})
    assert patched.status_code == 200, patched.text
    [item] = await _listed(api, unique_name)
    assert [offer["amount"] for offer in item["accepts"]] == ["8000"]

    # when disabled: gone; enabled again: back
    await api.patch(f"/admin/v1/providers/{unique_name}", headers=admin_headers,
                    json={"enabled": False})
    assert await _listed(api, unique_name) == []
    await api.patch(f"/admin/v1/providers/{unique_name}", headers=admin_headers,
                    json={"enabled": True})
    assert len(await _listed(api, unique_name)) == 1

    # when deleted: gone
    deleted = await api.delete(f"/admin/v1/providers/{unique_name}", headers=admin_headers)
    assert deleted.status_code == 200, deleted.text
    assert await _listed(api, unique_name) == []


async def test_without_a_settlement_signer_only_passes_are_listed(selling):
    # given per-call payments are not taken (no signer), passes still are
    settings = selling(chain_signer_private_key=None)
    async with AsyncTestClient(app=create_app(settings)) as api:
        # when
        response = await api.get(LISTING, params={"limit": 100})

    # then
    assert response.status_code == 200, response.text
    kinds = {item["metadata"]["kind"] for item in response.json()["items"]}
    assert kinds == {"pass"}
    assert response.json()["pagination"]["total"] == 3


async def test_without_payments_nothing_is_listed(settings_factory):
    # given no chain configured: nothing is sold with x402
    async with AsyncTestClient(app=create_app(settings_factory(providers=[CONFIGURED]))) as api:
        # when
        response = await api.get(LISTING)

    # then
    assert response.status_code == 200, response.text
    assert response.json() == {"x402Version": 2, "items": [],
                               "pagination": {"limit": 20, "offset": 0, "total": 0}}


async def test_many_providers_are_all_listed_and_paged(api, admin_headers, unique_name):
    # given 120 admin providers more than before
    before = (await api.get(LISTING))
    total = before.json()["pagination"]["total"]
    names = [f"{unique_name}-{i:03d}" for i in range(120)]
    try:
        for name in names:
            created = await api.post("/admin/v1/providers", headers=admin_headers, json={
                "name": name, "baseUrl": "http://127.0.0.1:9/", "priceMicros": 1000})
            assert created.status_code == 201, created.text

        # when paging through them, 100 at most a page
        first = await api.get(LISTING, params={"resource": unique_name, "limit": 100})
        second = await api.get(LISTING, params={"resource": unique_name, "limit": 100,
                                                "offset": 100})
        everything = await api.get(LISTING, params={"limit": 1})

        # then
        listed = [item["resource"] for item in first.json()["items"] + second.json()["items"]]
        assert [url.rsplit("/", 1)[-1] for url in listed] == names
        assert first.json()["pagination"]["total"] == 120
        assert everything.json()["pagination"]["total"] == total + 120
    finally:
        for name in names:
            await api.delete(f"/admin/v1/providers/{name}", headers=admin_headers)
