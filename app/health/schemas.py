"""``GET /v1/health``: one entry per dependency and background part, and the reasons."""

from __future__ import annotations

import msgspec

from app.transfers.schemas import WatcherView


class Live(msgspec.Struct):
    status: str


class DependencyState(msgspec.Struct):
    status: str
    detail: str | None = None


class JobView(msgspec.Struct, rename="camel"):
    """One periodic job. ``status``: ``ok``, ``failing`` (its last run raised, still within
    its threshold), ``starting`` (not run yet, this API process is new), ``late`` (no success
    for longer than ``staleAfterSeconds``)."""

    name: str
    queue: str | None
    status: str
    every_seconds: float | None
    stale_after_seconds: float
    last_sent_at: str | None
    last_success_at: str | None
    # Seconds since the last success; how long that run waited in its queue.
    age_seconds: float | None
    queue_delay_seconds: float | None
    last_failure_at: str | None
    last_error: str | None


class OldestWork(msgspec.Struct, rename="camel"):
    id: str
    status: str
    created_at: str
    age_seconds: float


class SignerNetworkView(msgspec.Struct, rename="camel"):
    """The signer's gas money on one network (read at most every few seconds)."""

    network: str
    gas_balance_wei: str | None
    # What one settlement costs at the current fees, with headroom.
    minimum_wei: str | None
    funded: bool | None
    error: str | None


class SignerView(msgspec.Struct, rename="camel"):
    """``status``: ``unused`` (no network enabled), ``not_configured``, ``no_gas``, or its
    sweeper's job status."""

    status: str
    configured: bool
    address: str | None
    last_success_at: str | None
    age_seconds: float | None
    networks: list[SignerNetworkView]
    oldest_unsettled_payment: OldestWork | None


class WebhookDeliveryView(msgspec.Struct, rename="camel"):
    status: str
    last_success_at: str | None
    age_seconds: float | None
    oldest_undelivered: OldestWork | None


class SchedulerView(msgspec.Struct, rename="camel"):
    """The periodic jobs' sender, seen through the jobs workers ran: ``lastSentAt`` is when
    the newest of them was sent."""

    status: str
    last_sent_at: str | None
    age_seconds: float | None


class AttentionSummary(msgspec.Struct, rename="camel"):
    """Work parked for an operator (``GET /admin/v1/attention?status=open``), by kind."""

    open: int
    by_kind: dict[str, int]


class Health(msgspec.Struct):
    """``status`` is ``ok`` (200) or ``degraded`` (503), and then ``reasons`` says why."""

    status: str
    reasons: list[str]
    database: DependencyState
    broker: DependencyState
    chains: list[WatcherView]
    signer: SignerView
    webhooks: WebhookDeliveryView
    scheduler: SchedulerView
    jobs: list[JobView]
    attention: AttentionSummary | None
