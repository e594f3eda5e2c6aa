"""The discovery listing: every resource passgate sells with x402, in the spec's shape.

Each item is what that resource's 402 says (built by the same code: the pass's and the
provider's ``PaidRequest`` through the payments challenge), so the listing cannot promise
other terms than the 402 asks for: passes by period, and, when per-call payments are taken
(a settlement signer is configured), every usable gateway provider at its default price.
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Any

from app.catalog.discovery_query import DiscoveryQuery
from app.catalog.schemas import DiscoveryItem, DiscoveryList, DiscoveryPagination
from app.db.types import rfc3339, to_utc
from app.gateway.discovery import provider_paid_request
from app.gateway.providers import Provider
from app.gateway.service import Gateway
from app.passes.service import paid_request as pass_paid_request
from app.payments.service import PaidRequest, Payments
from app.settings import Settings

X402_VERSION = 2


def _item(
    payments: Payments, paid: PaidRequest, updated: datetime, metadata: dict[str, Any]
) -> DiscoveryItem:
    challenge = payments.challenge(paid)
    required = challenge.payment_required().model_dump(by_alias=True, exclude_none=True)
    return DiscoveryItem(
        resource=challenge.resource.url,
        type="http",
        x402_version=X402_VERSION,
        accepts=required["accepts"],
        last_updated=rfc3339(to_utc(updated)) or "",
        description=challenge.resource.description,
        mime_type=challenge.resource.mime_type,
        extensions=required.get("extensions"),
        metadata=metadata,
    )


def _provider_metadata(provider: Provider) -> dict[str, Any]:
    return {
        "kind": "gateway",
        "provider": provider.name,
        "priceMicros": provider.price_micros,
        "modelPrices": dict(provider.model_prices),
        "routePrices": dict(provider.route_prices),
        "forwards": "any method and path under the resource",
    }


async def _all_items(
    settings: Settings, payments: Payments, gateway: Gateway
) -> list[DiscoveryItem]:
    if not payments.chain.configured:
        return []
    since = gateway.registry.configured_at
    items = [
        _item(payments, pass_paid_request(settings, item), since,
              {"kind": "pass", "period": item.period, "durationSeconds": item.seconds,
               "priceMicros": item.price_micros, "scopes": list(settings.pass_scopes)})
        for item in settings.passes
    ]
    if payments.chain.can_settle_signed:
        items.extend(
            _item(payments, provider_paid_request(settings, provider),
                  provider.updated_at or since, _provider_metadata(provider))
            for provider in await gateway.registry.all()
        )
    return items


def _folded(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _matches(item: DiscoveryItem, query: DiscoveryQuery) -> bool:
    if query.type is not None and item.type != query.type:
        return False
    if query.extension is not None and query.extension not in (item.extensions or {}):
        return False
    if query.resource is not None and query.resource not in _folded(item.resource):
        return False
    # The payment filters hold together for one offer.
    pay_to = None if query.pay_to is None else query.pay_to.lower()
    return any(
        (query.scheme is None or offer.get("scheme") == query.scheme)
        and (query.network is None or offer.get("network") == query.network)
        and (pay_to is None or str(offer.get("payTo", "")).lower() == pay_to)
        for offer in item.accepts
    )


async def list_resources(
    settings: Settings, payments: Payments, gateway: Gateway, query: DiscoveryQuery
) -> DiscoveryList:
    """The page of paid resources ``query`` selects: passes (catalog order), then gateway
    providers (by name); ``total`` counts every match."""
    found = [item for item in await _all_items(settings, payments, gateway)
             if _matches(item, query)]
    page = found[query.offset : query.offset + query.limit]
    return DiscoveryList(
        x402_version=X402_VERSION,
        items=page,
        pagination=DiscoveryPagination(limit=query.limit, offset=query.offset, total=len(found)),
    )
