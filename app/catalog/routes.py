"""Public catalogs: gateway providers and key passes, with prices in micros."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Router, get

from app.gateway.service import Gateway
from app.http.schemas import RateLimitView
from app.settings import Settings


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


@get("/providers")
async def list_providers(gateway: Gateway) -> Catalog:
    """Gateway providers and their per-request prices (configured and admin-managed)."""
    providers = await gateway.registry.all() if gateway is not None else []
    return Catalog(data=[
        ProviderView(name=p.name, description=p.description, price_micros=p.price_micros,
                     price_usd=p.price_micros / 1_000_000, model_prices=dict(p.model_prices),
                     route_prices=dict(p.route_prices))
        for p in providers
    ])


@get("/passes")
async def list_passes(settings: Settings) -> Catalog:
    """Time-limited key passes sold with x402: period, price, scopes, rate limits."""
    limits = settings.plan_limits("pass")
    return Catalog(data=[
        PassView(period=p.period, duration_seconds=p.seconds, price_micros=p.price_micros,
                 price_usd=p.price_micros / 1_000_000, scopes=list(settings.pass_scopes),
                 rate_limit=RateLimitView(requests_per_minute=limits.per_minute,
                                          requests_per_day=limits.per_day))
        for p in settings.passes
    ])


router = Router(path="/v1", route_handlers=[list_providers, list_passes], tags=["catalog"])
