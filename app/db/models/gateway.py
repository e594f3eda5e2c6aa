"""Gateway tables: admin-managed providers, one usage row per call, daily spend counters."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db.columns import created_at, micros, timestamp
from app.db.columns import created_at as now_column
from app.db.types import UTCDateTime

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
    # Usage pricing ({"field", "micros_per_unit", "max_micros"}), or NULL: a fixed price.
    usage_pricing: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(
        sa.JSON(), nullable=True))
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
    # The credit lease the call was paid from (``app.gateway.leases``); NULL for a call that
    # reserved its own price.
    lease_id: str | None = Field(default=None, max_length=40)
    created_at: datetime = created_at()
    completed_at: datetime | None = timestamp()


@dataclass(slots=True)
class OpenCall:
    """A call about to be recorded as a ``pending`` usage row: what the request path knows.

    A plain record, not a ``GatewayUsage``: the row is written with one Core INSERT (or inside
    the PostgreSQL reservation statement) and never read back, and building the table model
    cost about a tenth of a millisecond per call in validation and attribute instrumentation.
    """

    id: str
    agent_id: str | None
    key_id: str | None
    platform_id: str | None
    provider: str
    method: str
    route: str
    price_micros: int
    payment: str
    payment_id: str | None
    created_at: datetime
    # Set with the reservation: the UTC day whose spend counters hold it.
    spend_day: str | None = None

    def row(self) -> dict[str, Any]:
        """The usage row's columns (the rest take their defaults)."""
        return {
            "id": self.id, "agent_id": self.agent_id, "key_id": self.key_id,
            "platform_id": self.platform_id, "provider": self.provider, "method": self.method,
            "route": self.route, "status": PENDING, "price_micros": self.price_micros,
            "cost_micros": 0, "payment": self.payment, "payment_id": self.payment_id,
            "spend_day": self.spend_day, "created_at": self.created_at,
        }


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


# Lease states: ``open`` while an API process may pay calls from it; ``closed`` once what it
# did not use went back to the balance.
LEASE_OPEN = "open"
LEASE_CLOSED = "closed"


class CreditLease(SQLModel, table=True):
    """Credits one API process took from an agent's balance to pay many calls without a
    database round trip each (``app.gateway.leases``).

    Taking it moves ``amount_micros`` out of the balance (a ``hold`` ledger entry) and into
    today's spend counters; closing it gives ``amount_micros - used_micros`` back (a
    ``release`` entry, the counters lowered) and adds ``used_micros`` to what the agent spent.
    ``used_micros`` grows as the process records the calls it served.
    """

    __tablename__ = "gateway_credit_leases"
    __table_args__ = (
        sa.Index("ix_gateway_credit_leases_agent_state", "agent_id", "state"),
        sa.Index("ix_gateway_credit_leases_state_expires", "state", "expires_at"),
    )

    id: str = Field(primary_key=True, max_length=40)
    agent_id: str = Field(foreign_key="agents.id", max_length=40)
    platform_id: str | None = Field(default=None, max_length=40)
    # Which process holds it (host:pid:random), for the operator.
    holder: str = Field(max_length=120)
    # The UTC day whose spend counters hold it.
    day: str = Field(max_length=10)
    amount_micros: int = micros()
    used_micros: int = micros()
    state: str = Field(default=LEASE_OPEN, max_length=10)
    created_at: datetime = created_at()
    # No call starts on it after this; the sweeper closes it once past (its process died).
    expires_at: datetime = Field(sa_column=sa.Column(UTCDateTime(), nullable=False))
    closed_at: datetime | None = timestamp()
    # Who closed it: its process, or the sweeper (its process died or lost the database).
    closed_by: str | None = Field(default=None, max_length=10)
