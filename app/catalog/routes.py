"""Public catalogs: gateway providers and key passes, with prices in micros."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Router, get

from app.auth.guards import runtime_of
from app.http.schemas import RateLimitView


class ProviderView(msgspec.Struct, rename="camel"):
    name: str
    description: str | None
    price_micros: int
    price_usd: float


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
async def list_providers(request: Request[Any, Any, Any]) -> Catalog:
    """Gateway providers and their per-request prices."""
    settings = runtime_of(request).settings
    return Catalog(data=[
        ProviderView(name=p.name, description=p.description, price_micros=p.price_micros,
                     price_usd=p.price_micros / 1_000_000)
        for p in settings.providers
    ])


@get("/passes")
async def list_passes(request: Request[Any, Any, Any]) -> Catalog:
    """Time-limited key passes sold with x402: period, price, scopes, rate limits."""
    settings = runtime_of(request).settings
    limits = settings.plan_limits("pass")
    return Catalog(data=[
        PassView(period=p.period, duration_seconds=p.seconds, price_micros=p.price_micros,
                 price_usd=p.price_micros / 1_000_000, scopes=list(settings.pass_scopes),
                 rate_limit=RateLimitView(requests_per_minute=limits.per_minute,
                                          requests_per_day=limits.per_day))
        for p in settings.passes
    ])


router = Router(path="/v1", route_handlers=[list_providers, list_passes], tags=["catalog"])
