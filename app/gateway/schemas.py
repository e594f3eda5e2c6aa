"""Wire shapes of the gateway: usage records and the admin provider API, and the converters
from rows (and provider settings) to them."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.config.providers import ProviderSettings
from app.db.models.gateway import CreditLease, GatewayProvider, GatewayUsage
from app.db.types import rfc3339
from app.http.schemas import Description, Micros

# Where a provider comes from (``AdminProviderView.source``): the deployment's settings, or
# the admin API.
CONFIG = "config"
ADMIN = "admin"

ProviderName = Annotated[str, msgspec.Meta(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")]
Timeout = Annotated[float, msgspec.Meta(gt=0, le=600)]
Url = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
HeaderName = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]


class UsageView(msgspec.Struct, rename="camel"):
    id: str
    key_id: str | None
    agent_id: str | None
    provider: str
    method: str
    route: str
    status: str
    upstream_status: int | None
    price_micros: int
    cost_micros: int
    latency_ms: int | None
    upstream_request_id: str | None
    error: str | None
    payment: str
    created_at: str
    completed_at: str | None


class UsagePricingBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """A price by usage: ``microsPerUnit`` per unit of the number at ``field`` (a dotted path
    into the upstream's JSON answer), at most ``maxMicros`` a call."""

    field: Annotated[str, msgspec.Meta(min_length=1, max_length=1000)]
    micros_per_unit: Annotated[int, msgspec.Meta(ge=1)]
    max_micros: Annotated[int, msgspec.Meta(ge=1)]


class CreateProviderBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """An admin-managed provider. ``headers`` values are write-only (the upstream API key)."""

    name: ProviderName
    base_url: Url
    price_micros: Micros
    description: Description | None = None
    headers: dict[HeaderName, str] = msgspec.field(default_factory=dict)
    model_prices: dict[str, Micros] = msgspec.field(default_factory=dict)
    route_prices: dict[str, Micros] = msgspec.field(default_factory=dict)
    timeout_seconds: Timeout = 30.0
    request_id_header: HeaderName = "x-request-id"
    usage_pricing: UsagePricingBody | None = None
    enabled: bool = True


class UpdateProviderBody(msgspec.Struct, forbid_unknown_fields=True, rename="camel"):
    """Changed fields only. ``headers`` replaces the whole set of injected headers."""

    base_url: Url | msgspec.UnsetType = msgspec.UNSET
    price_micros: Micros | msgspec.UnsetType = msgspec.UNSET
    description: Description | msgspec.UnsetType | None = msgspec.UNSET
    headers: dict[HeaderName, str] | msgspec.UnsetType = msgspec.UNSET
    model_prices: dict[str, Micros] | msgspec.UnsetType = msgspec.UNSET
    route_prices: dict[str, Micros] | msgspec.UnsetType = msgspec.UNSET
    timeout_seconds: Timeout | msgspec.UnsetType = msgspec.UNSET
    request_id_header: HeaderName | msgspec.UnsetType = msgspec.UNSET
    # null: back to the fixed price.
    usage_pricing: UsagePricingBody | msgspec.UnsetType | None = msgspec.UNSET
    enabled: bool | msgspec.UnsetType = msgspec.UNSET

    def changes(self) -> dict[str, object]:
        return {
            name: value
            for name in self.__struct_fields__
            if (value := getattr(self, name)) is not msgspec.UNSET
        }


class AdminProviderView(msgspec.Struct, rename="camel"):
    """A provider as the operator sees it: everything but the injected header values."""

    name: str
    source: str  # CONFIG or ADMIN
    id: str | None
    base_url: str
    description: str | None
    price_micros: int
    model_prices: dict[str, int]
    route_prices: dict[str, int]
    timeout_seconds: float
    request_id_header: str
    usage_pricing: UsagePricingBody | None
    header_names: list[str]
    enabled: bool
    # An admin-managed provider hidden by a configured one of the same name.
    shadowed: bool
    created_at: str | None
    updated_at: str | None


def usage_view(usage: GatewayUsage) -> UsageView:
    """One usage row as the agent sees it."""
    return UsageView(
        id=usage.id,
        key_id=usage.key_id,
        agent_id=usage.agent_id,
        provider=usage.provider,
        method=usage.method,
        route=usage.route,
        status=usage.status,
        upstream_status=usage.upstream_status,
        price_micros=usage.price_micros,
        cost_micros=usage.cost_micros,
        latency_ms=usage.latency_ms,
        upstream_request_id=usage.upstream_request_id,
        error=usage.error,
        payment=usage.payment,
        created_at=rfc3339(usage.created_at) or "",
        completed_at=rfc3339(usage.completed_at),
    )


def admin_provider_view(
    config: ProviderSettings, row: GatewayProvider | None, *, shadowed: bool = False
) -> AdminProviderView:
    """A configured provider (``row`` None) or an admin-managed one (``config`` read from its
    row); header names only, never their values."""
    return AdminProviderView(
        name=config.name,
        source=CONFIG if row is None else ADMIN,
        id=row.id if row is not None else None,
        base_url=config.base_url,
        description=config.description,
        price_micros=config.price_micros,
        model_prices=dict(config.model_prices),
        route_prices=dict(config.route_prices),
        timeout_seconds=config.timeout_seconds,
        request_id_header=config.request_id_header,
        usage_pricing=None if config.usage_pricing is None else UsagePricingBody(
            field=config.usage_pricing.field,
            micros_per_unit=config.usage_pricing.micros_per_unit,
            max_micros=config.usage_pricing.max_micros,
        ),
        header_names=sorted(config.headers) if row is None else sorted(row.headers_sealed),
        enabled=True if row is None else row.enabled,
        shadowed=shadowed,
        created_at=rfc3339(row.created_at) if row is not None else None,
        updated_at=rfc3339(row.updated_at) if row is not None else None,
    )


class LeaseView(msgspec.Struct, rename="camel"):
    """A credit lease as the operator sees it (``app.gateway.leases``)."""

    id: str
    agent_id: str
    platform_id: str | None
    holder: str
    day: str
    amount_micros: int
    used_micros: int
    state: str
    created_at: str
    expires_at: str
    closed_at: str | None
    closed_by: str | None


def lease_view(lease: CreditLease) -> LeaseView:
    return LeaseView(
        id=lease.id, agent_id=lease.agent_id, platform_id=lease.platform_id, holder=lease.holder,
        day=lease.day, amount_micros=lease.amount_micros, used_micros=lease.used_micros,
        state=lease.state, created_at=rfc3339(lease.created_at) or "",
        expires_at=rfc3339(lease.expires_at) or "", closed_at=rfc3339(lease.closed_at),
        closed_by=lease.closed_by,
    )
