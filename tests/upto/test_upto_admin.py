"""usagePricing in the admin API: validated, shown, removable; an admin-managed provider priced
by usage charges the usage of a call made with a key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from litestar.testing import AsyncTestClient
from sqlalchemy import delete

from app.db.models.gateway import GatewayProvider
from app.main import create_app
from app.settings import Settings
from tests.factories import key_headers
from tests.gateway.helpers import database, signup

USAGE = {"field": "usage.total_tokens", "microsPerUnit": 20, "maxMicros": 100_000}


@pytest.fixture
async def api(settings_factory: Callable[..., Settings]) -> AsyncIterator[AsyncTestClient]:
    async with AsyncTestClient(app=create_app(settings_factory(
            plan_free_per_minute=100_000))) as client:
        yield client
    async with database(settings_factory()) as sessions, sessions() as session:
        await session.execute(delete(GatewayProvider))
        await session.commit()


def _provider(upstream: str, **fields: Any) -> dict[str, Any]:
    return {"name": "metered", "baseUrl": upstream, "priceMicros": 5_000, **fields}


async def test_a_provider_priced_by_usage_is_created_shown_used_and_changed(
    api, admin_headers, upstream_url
) -> None:
    created = await api.post("/admin/v1/providers",
                             json=_provider(upstream_url, usagePricing=USAGE),
                             headers=admin_headers)
    assert created.status_code == 201, created.text
    assert created.json()["usagePricing"] == USAGE
    catalog = (await api.get("/v1/providers")).json()["data"]
    assert next(p for p in catalog if p["name"] == "metered")["usagePricing"] == USAGE

    key = await signup(api)
    call = await api.get("/v1/gateway/metered/usage?tokens=50", headers=key_headers(key))
    assert call.status_code == 200, call.text
    assert call.headers["x-gateway-cost-micros"] == str(50 * 20)

    changed = await api.patch("/admin/v1/providers/metered", json={"usagePricing": None},
                              headers=admin_headers)
    assert changed.status_code == 200, changed.text
    assert changed.json()["usagePricing"] is None


@pytest.mark.parametrize("usage", [
    {**USAGE, "microsPerUnit": 0},
    {**USAGE, "maxMicros": 0},
    {**USAGE, "field": "usage..total"},
    {**USAGE, "field": ""},
    {"field": "usage.total_tokens", "microsPerUnit": 20},
    {**USAGE, "extra": 1},
])
async def test_invalid_usage_pricing_is_a_validation_error(
    api, admin_headers, upstream_url, usage
) -> None:
    response = await api.post("/admin/v1/providers",
                              json=_provider(upstream_url, usagePricing=usage),
                              headers=admin_headers)

    assert response.status_code == 400, response.text
    assert response.json()["code"] == "VALIDATION_ERROR"
