"""The public catalogs: what the gateway's providers and the key passes cost."""

from __future__ import annotations

from app.catalog.schemas import Catalog, pass_view, provider_view
from app.gateway.service import Gateway
from app.settings import Settings


async def providers(gateway: Gateway) -> Catalog:
    """Every usable gateway provider (configured and admin-managed), by name, with prices."""
    return Catalog(data=[provider_view(p) for p in await gateway.registry.all()])


def passes(settings: Settings) -> Catalog:
    """The key passes on sale: period, price, the scopes and rate limits a pass key gets."""
    limits = settings.plan_limits("pass")
    return Catalog(data=[pass_view(p, settings.pass_scopes, limits) for p in settings.passes])
