"""Wire shapes of the gateway: usage records and the admin provider API."""

from __future__ import annotations

from typing import Annotated

import msgspec

from app.http.schemas import Description, Micros

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
    source: str  # config or admin
    id: str | None
    base_url: str
    description: str | None
    price_micros: int
    model_prices: dict[str, int]
    route_prices: dict[str, int]
    timeout_seconds: float
    request_id_header: str
    header_names: list[str]
    enabled: bool
    # An admin-managed provider hidden by a configured one of the same name.
    shadowed: bool
    created_at: str | None
    updated_at: str | None
