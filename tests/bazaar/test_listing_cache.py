"""The listing keeps each built item only while what it shows is unchanged."""

from __future__ import annotations

from dataclasses import replace

from app.catalog.discovery import Discovery
from app.catalog.discovery_query import DiscoveryQuery
from app.gateway.service import Gateway
from app.payments.networks import PaymentChain
from app.payments.service import Payments
from app.payments.waiter import SettlementWaiter
from tests.bazaar.conftest import CONFIGURED
from tests.gateway.helpers import database


async def test_a_changed_price_or_route_price_is_listed_even_at_the_same_update_time(
    bazaar_settings
):
    # given a listing built once
    async with database(bazaar_settings) as sessions:
        gateway = Gateway(bazaar_settings, sessions)
        payments = Payments(PaymentChain(bazaar_settings), SettlementWaiter(None, "x"), None, "x")
        try:
            await _changes_show(Discovery(bazaar_settings, payments, gateway), gateway)
        finally:
            await gateway.aclose()
            await payments.chain.close()


async def _changes_show(discovery: Discovery, gateway: Gateway) -> None:
    name = CONFIGURED["name"]
    query = DiscoveryQuery(resource=f"/gateway/{name}")
    [first] = (await discovery.list_resources(query)).items
    assert first.accepts[0]["amount"] == "2500"
    kept = await discovery.items()
    assert all(a is b for a, b in zip(kept, await discovery.items(), strict=True))

    # when the provider's route prices change without a new update time
    provider = gateway.registry.configured[name]
    gateway.registry.configured[name] = replace(provider, route_prices=(("/v2", 1),))
    [changed] = (await discovery.list_resources(query)).items

    # then the listing shows it, and only its item was built again
    assert changed.metadata is not None
    assert changed.metadata["routePrices"] == {"/v2": 1}
    again = await discovery.items()
    assert [a is b for a, b in zip(kept, again, strict=True)] == [
        item.resource != first.resource for item in kept]

    # and when the price changes
    gateway.registry.configured[name] = replace(provider, price_micros=4200)
    [repriced] = (await discovery.list_resources(query)).items
    assert repriced.accepts[0]["amount"] == "4200"
