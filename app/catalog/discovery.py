"""The discovery listing: every resource passgate sells with x402, in the spec's shape.

Each item is what that resource's 402 says (built by the same code: the pass's and the
provider's ``PaidRequest`` through the payments challenge), so the listing cannot promise
other terms than the 402 asks for: passes by period, and, when per-call payments are taken
(a settlement signer is configured), every usable gateway provider at its default price.
"""

from __future__ import annotations

import asyncio
import unicodedata
from datetime import datetime
from typing import Any

from x402.extensions.sign_in_with_x import SIGN_IN_WITH_X

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
# Items built between two yields to the event loop (~0.5 ms each).
BUILD_SLICE = 32


def _lasting(extensions: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a listing may keep of a 402's extensions: a sign-in challenge is one 402's own (its
    nonce expires within minutes), so a client asks the resource for a fresh one."""
    if not extensions:
        return extensions
    return {key: value for key, value in extensions.items() if key != SIGN_IN_WITH_X} or None


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
        extensions=_lasting(required.get("extensions")),
        metadata=metadata,
    )


def _provider_metadata(provider: Provider) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "kind": "gateway",
        "provider": provider.name,
        "priceMicros": provider.price_micros,
        "modelPrices": dict(provider.model_prices),
        "routePrices": dict(provider.route_prices),
        "forwards": "any method and path under the resource",
    }
    if provider.usage_pricing is not None:
        metadata["usagePricing"] = provider.usage_pricing.model_dump(by_alias=True)
    return metadata


def _pass_items(settings: Settings, payments: Payments, since: datetime) -> list[DiscoveryItem]:
    return [
        _item(payments, pass_paid_request(settings, item), since,
              {"kind": "pass", "period": item.period, "durationSeconds": item.seconds,
               "priceMicros": item.price_micros, "scopes": list(settings.pass_scopes)})
        for item in settings.passes
    ]


class Discovery:
    """The listing of one process. Building an item costs about half a millisecond (the
    challenge's checksummed addresses and copies), so each item is kept until what it shows
    changes: a provider added, changed (its ``updated_at``), disabled or removed rebuilds that
    provider's item only (a thousand providers rebuilt at once held the event loop ~0.8 s). A
    public request then costs a filter over built items however many providers there are."""

    def __init__(self, settings: Settings, payments: Payments, gateway: Gateway) -> None:
        self._settings = settings
        self._payments = payments
        self._gateway = gateway
        self._passes: list[DiscoveryItem] | None = None
        # Per provider name: everything its item shows of it, and the item.
        self._providers: dict[str, tuple[tuple[Any, ...], DiscoveryItem]] = {}

    async def items(self) -> list[DiscoveryItem]:
        """Every resource on sale: passes (catalog order), then gateway providers (by name)."""
        chain = self._payments.chain
        if not chain.configured:
            return []
        # Per-call payments need the signer: without one the gateway answers 503, not 402.
        providers = await self._gateway.registry.all() if chain.can_settle_signed else []
        since = self._gateway.registry.configured_at
        if self._passes is None:
            self._passes = _pass_items(self._settings, self._payments, since)
        built: dict[str, tuple[tuple[Any, ...], DiscoveryItem]] = {}
        fresh = 0
        for provider in providers:
            # ``updated_at`` alone could miss two changes within the column's precision.
            key = (provider.source, provider.price_micros, provider.updated_at,
                   provider.route_prices, tuple(sorted(provider.model_prices.items())),
                   provider.usage_pricing)
            kept = self._providers.get(provider.name)
            if kept is None or kept[0] != key:
                kept = (key, _item(self._payments,
                                   provider_paid_request(self._settings, provider),
                                   provider.updated_at or since, _provider_metadata(provider)))
                fresh += 1
                if fresh % BUILD_SLICE == 0:
                    # A first listing of many providers must not hold every call of this
                    # process: let others run between slices.
                    await asyncio.sleep(0)
            built[provider.name] = kept
        self._providers = built
        return [*self._passes, *(item for _, item in built.values())]

    async def list_resources(self, query: DiscoveryQuery) -> DiscoveryList:
        """The page of resources ``query`` selects; ``total`` counts every match."""
        found = [item for item in await self.items() if _matches(item, query)]
        return DiscoveryList(
            x402_version=X402_VERSION,
            items=found[query.offset : query.offset + query.limit],
            pagination=DiscoveryPagination(limit=query.limit, offset=query.offset,
                                           total=len(found)),
        )


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
