"""Liveness and the state of every dependency; 503 when one is down."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get
from sqlalchemy import text

from app.auth.guards import runtime_of
from app.db.types import utcnow
from app.transfers import service as transfers
from app.transfers.schemas import WatcherView
from app.transfers.views import watcher_view

CHECK_TIMEOUT = 2.0


class DependencyState(msgspec.Struct):
    status: str
    detail: str | None = None


class Health(msgspec.Struct):
    status: str
    database: DependencyState
    broker: DependencyState
    chains: list[WatcherView]
    signer: DependencyState


async def _database(request: Request[Any, Any, Any]) -> DependencyState:
    try:
        async with runtime_of(request).engine.connect() as conn:
            await asyncio.wait_for(conn.execute(text("SELECT 1")), CHECK_TIMEOUT)
    except Exception as exc:  # any failure means "down"; the type goes in the detail
        return DependencyState("down", type(exc).__name__)
    return DependencyState("ok")


async def _broker(request: Request[Any, Any, Any]) -> DependencyState:
    rt = runtime_of(request)
    if rt.redis is None:
        return DependencyState("ok", "embedded (in-process broker)")
    try:
        await asyncio.wait_for(rt.redis.ping(), CHECK_TIMEOUT)
    except Exception as exc:  # any failure means "down"
        return DependencyState("down", type(exc).__name__)
    return DependencyState("ok")


async def _chains(request: Request[Any, Any, Any]) -> list[WatcherView]:
    """Each enabled network's watcher as last recorded (no RPC call: health stays fast)."""
    rt = runtime_of(request)
    networks = rt.settings.networks()
    if not networks:
        return []
    try:
        async with rt.sessions() as session:
            states = await asyncio.wait_for(
                transfers.watcher_states(session, list(networks)), CHECK_TIMEOUT
            )
    except Exception:  # the database check reports the failure; nothing to add per chain
        states = {}
    now = utcnow()
    limit = rt.settings.chain_unhealthy_after_seconds
    return [watcher_view(net, states.get(name), now, limit) for name, net in networks.items()]


def _signer(request: Request[Any, Any, Any]) -> DependencyState:
    """Whether signed x402 payments can be settled (from the settings: no RPC call)."""
    settings = runtime_of(request).settings
    if not settings.takes_x402_payments:
        return DependencyState("off", "no x402 payments (no network and pay-to address)")
    if settings.signer_address is None:
        return DependencyState(
            "not_configured",
            "PASSGATE_CHAIN_SIGNER_PRIVATE_KEY is not set: signed x402 payments are refused "
            "with 503 (pushed transfers are still accepted)",
        )
    return DependencyState("ok", settings.signer_address)


class Live(msgspec.Struct):
    status: str


@get("/v1/health/live", tags=["health"])
async def live() -> Live:
    """Liveness only: the process answers. Touches no dependency (for probes and load tests)."""
    return Live("ok")


@get("/v1/health", tags=["health"])
async def health(request: Request[Any, Any, Any]) -> Response[Health]:
    """Database, broker, chain watchers (head, cursor, lag) and the settlement signer.

    503 when the database or broker is down, or when a chain watcher has been failing (or not
    run at all) for longer than ``chain_unhealthy_after_seconds``: payments and deposits on
    that network would not be seen. Short RPC blips show as ``failing`` with a 200. x402
    payments without a settlement signer are ``degraded`` with a 200 (``signer`` says why).
    """
    database, broker, chains = await asyncio.gather(
        _database(request), _broker(request), _chains(request)
    )
    signer = _signer(request)
    up = (database.status == "ok" and broker.status == "ok"
          and all(chain.status != "down" for chain in chains))
    # A missing signer is a configuration to fix, not an outage: degraded, still 200, so a
    # load balancer keeps the API (keys, credits, pushed payments) in rotation.
    complete = signer.status != "not_configured"
    body = Health(status="ok" if up and complete else "degraded", database=database,
                  broker=broker, chains=chains, signer=signer)
    return Response(body, status_code=200 if up else 503)
