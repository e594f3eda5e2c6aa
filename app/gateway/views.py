"""Tables and entries to wire shapes."""

from __future__ import annotations

from app.db.models.gateway import GatewayUsage
from app.db.types import rfc3339
from app.gateway.manage import Entry
from app.gateway.schemas import AdminProviderView, UsageView


def usage_view(usage: GatewayUsage) -> UsageView:
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


def admin_provider_view(entry: Entry) -> AdminProviderView:
    config, row = entry.config, entry.row
    return AdminProviderView(
        name=config.name,
        source=entry.source,
        id=row.id if row is not None else None,
        base_url=config.base_url,
        description=config.description,
        price_micros=config.price_micros,
        model_prices=dict(config.model_prices),
        route_prices=dict(config.route_prices),
        timeout_seconds=config.timeout_seconds,
        request_id_header=config.request_id_header,
        header_names=entry.header_names,
        enabled=entry.enabled,
        shadowed=entry.shadowed,
        created_at=rfc3339(row.created_at) if row is not None else None,
        updated_at=rfc3339(row.updated_at) if row is not None else None,
    )
