"""Public catalogs: gateway providers and key passes, with prices in micros."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router, get

from app.catalog import service
from app.catalog.discovery import Discovery
from app.catalog.discovery_query import parse_discovery_query
from app.catalog.schemas import Catalog, DiscoveryList
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


@get("/discovery/resources")
async def list_discovery_resources(
    request: Request[Any, Any, Any], discovery: Discovery
) -> DiscoveryList:
    """x402 discovery (the bazaar's ``GET /discovery/resources``): the resources sold with
    x402 and their payment requirements. Filters ``type``, ``payTo``, ``scheme``, ``network``,
    ``extensions``, ``resource`` (substring); ``limit`` (1-100, default 20), ``offset``."""
    query = parse_discovery_query(request.scope.get("query_string", b""))
    return await discovery.list_resources(query)


router = Router(
    path="/v1",
    route_handlers=[list_providers, list_passes, list_discovery_resources],
    tags=["catalog"],
)
