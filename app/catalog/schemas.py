"""Wire shapes of the public catalogs, and the converters from providers and passes to them."""

from __future__ import annotations

from typing import Any

import msgspec

from app.config.plans import PassSettings, PlanLimits
from app.gateway.providers import Provider
from app.http.schemas import RateLimitView


class ProviderView(msgspec.Struct, rename="camel"):
    name: str
    description: str | None
    price_micros: int
    price_usd: float
    # Prices that differ from ``priceMicros``: by the JSON body's ``model``, by path prefix.
    model_prices: dict[str, int]
    route_prices: dict[str, int]


class PassView(msgspec.Struct, rename="camel"):
    period: str
    duration_seconds: int
    price_micros: int
    price_usd: float
    scopes: list[str]
    rate_limit: RateLimitView


class Catalog(msgspec.Struct):
    data: list[Any]


def provider_view(p: Provider) -> ProviderView:
    """A provider as the public catalog shows it: prices, no headers."""
    return ProviderView(name=p.name, description=p.description, price_micros=p.price_micros,
                        price_usd=p.price_micros / 1_000_000, model_prices=dict(p.model_prices),
                        route_prices=dict(p.route_prices))


def pass_view(p: PassSettings, scopes: list[str], limits: PlanLimits) -> PassView:
    """A key pass on sale, with what a key bought with it may do."""
    return PassView(period=p.period, duration_seconds=p.seconds, price_micros=p.price_micros,
                    price_usd=p.price_micros / 1_000_000, scopes=list(scopes),
                    rate_limit=RateLimitView(requests_per_minute=limits.per_minute,
                                             requests_per_day=limits.per_day))


class DiscoveryItem(msgspec.Struct, rename="camel", omit_defaults=True):
    """One paid resource as x402 discovery lists it (the SDKs' ``DiscoveryResource``)."""

    resource: str
    type: str
    x402_version: int
    # The v2 ``PaymentRequirements`` a 402 for it offers, as on the wire.
    accepts: list[dict[str, Any]]
    # ISO 8601 (RFC 3339), as the SDKs' discovery types read it.
    last_updated: str
    description: str | None = None
    mime_type: str | None = None
    # The extensions its 402 declares, ``bazaar`` among them.
    extensions: dict[str, Any] | None = None
    # passgate's own: what is sold (``kind`` pass or gateway) and its other prices.
    metadata: dict[str, Any] | None = None


class DiscoveryPagination(msgspec.Struct):
    limit: int
    offset: int
    total: int


class DiscoveryList(msgspec.Struct, rename="camel"):
    """A page of the discovery listing (x402's ``GET /discovery/resources`` answer)."""

    x402_version: int
    items: list[DiscoveryItem]
    pagination: DiscoveryPagination
