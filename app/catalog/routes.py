"""Public catalogs: gateway providers and key passes, with prices in micros."""

from __future__ import annotations

from litestar import Router, get

from app.catalog import service
from app.catalog.schemas import Catalog
from app.gateway.service import Gateway
from app.settings import Settings


@get("/providers")
async def list_providers(gateway: Gateway) -> Catalog:
    """Gateway providers and their per-request prices (configured and admin-managed)."""
    return await service.providers(gateway)


@get("/passes")
async def list_passes(settings: Settings) -> Catalog:
    """Time-limited key passes sold with x402: period, price, scopes, rate limits."""
    return service.passes(settings)


router = Router(path="/v1", route_handlers=[list_providers, list_passes], tags=["catalog"])
