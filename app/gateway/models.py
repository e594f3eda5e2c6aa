"""Gateway tables: admin-managed providers, one usage row per call, daily spend counters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db.columns import created_at, micros, timestamp
from app.db.columns import created_at as now_column

# Usage states. A call is ``pending`` while its price is reserved (charged, not yet final);
# ``succeeded`` keeps the charge (upstream 2xx), ``failed`` gave it back.
PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"


def _json_dict() -> Any:
    return Field(default_factory=dict, sa_column=sa.Column(sa.JSON(), nullable=False))


# Spend counter scopes.
AGENT = "agent"
PLATFORM = "platform"


class GatewayProvider(SQLModel, table=True):
    """A provider added with the admin API (configured ones live in the settings).

    Injected header values are sealed (AES-GCM, key derived from the pepper, bound to the
    provider id and header name): a database dump alone does not reveal upstream credentials.
    """

    __tablename__ = "gateway_providers"

    id: str = Field(primary_key=True, max_length=40)
    name: str = Field(max_length=63, unique=True)
    base_url: str = Field(max_length=2048)
    description: str | None = Field(default=None, max_length=2000)
    price_micros: int = micros()
    model_prices: dict[str, int] = _json_dict()
    route_prices: dict[str, int] = _json_dict()
    # header name -> sealed value
    headers_sealed: dict[str, str] = _json_dict()
    timeout_seconds: float = Field(default=30.0)
    request_id_header: str = Field(default="x-request-id", max_length=100)
    enabled: bool = Field(default=True)
    created_at: datetime = created_at()
    updated_at: datetime = now_column()


class GatewayUsage(SQLModel, table=True):
    """One gateway call: who, what, the outcome and what it cost.

    Written ``pending`` together with the reservation, before the upstream is called, so a
    process that dies mid-call leaves a row the sweeper can release.
    """

    __tablename__ = "gateway_usage"
    __table_args__ = (
        sa.Index("ix_gateway_usage_agent_id_id", "agent_id", "id"),
        sa.Index("ix_gateway_usage_status_created_at", "status", "created_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    # NULL for x402 pay-per-call without a key.
    agent_id: str | None = Field(default=None, foreign_key="agents.id")
    key_id: str | None = Field(default=None, max_length=40)
    platform_id: str | None = Field(default=None, max_length=40)
    provider: str = Field(max_length=63)
    method: str = Field(max_length=10)
    route: str = Field(max_length=2048)
    status: str = Field(default=PENDING, max_length=10)
    upstream_status: int | None = None
    # What the call was quoted, and what was finally charged (0 unless the upstream said 2xx).
    price_micros: int = micros()
    cost_micros: int = micros()
    latency_ms: int | None = None
    upstream_request_id: str | None = Field(default=None, max_length=200)
    # timeout, connect_error, upstream_error, upstream_status, cancelled, abandoned
    error: str | None = Field(default=None, max_length=40)
    # credits or x402
    payment: str = Field(default="credits", max_length=10)
    payment_id: str | None = Field(default=None, max_length=40)
    # The UTC day whose spend counters hold the reservation (a release decrements that day).
    spend_day: str | None = Field(default=None, max_length=10)
    created_at: datetime = created_at()
    completed_at: datetime | None = timestamp()


class SpendCounter(SQLModel, table=True):
    """Gateway spend of one agent or one platform (fleet) on one UTC day, in micros.

    Incremented with the reservation in the same transaction and checked against the daily
    limit there; the row lock serialises concurrent calls across processes.
    """

    __tablename__ = "gateway_spend_counters"

    scope: str = Field(primary_key=True, max_length=10)
    owner_id: str = Field(primary_key=True, max_length=40)
    day: str = Field(primary_key=True, max_length=10)
    spent_micros: int = micros()
