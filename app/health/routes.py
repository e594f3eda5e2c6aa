"""Liveness and the state of every dependency; 503 when one is down."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.openapi import ResponseSpec
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


class Live(msgspec.Struct):
    status: str


@get("/v1/health/live", tags=["health"])
async def live() -> Live:
    """Liveness only: the process answers. Touches no dependency (for probes and load tests)."""
    return Live("ok")


@get(
    "/v1/health",
    tags=["health"],
    responses={503: ResponseSpec(Health, description="degraded: the same body, naming the part "
                                 "that is down")},
)
async def health(request: Request[Any, Any, Any]) -> Response[Health]:
    """Database, broker and chain watchers (head, cursor, lag).

    503 when the database or broker is down, or when a chain watcher has been failing (or not
    run at all) for longer than ``chain_unhealthy_after_seconds``: payments and deposits on
    that network would not be seen. Short RPC blips show as ``failing`` with a 200.
    """
    database, broker, chains = await asyncio.gather(
        _database(request), _broker(request), _chains(request)
    )
    up = (database.status == "ok" and broker.status == "ok"
          and all(chain.status != "down" for chain in chains))
    body = Health(status="ok" if up else "degraded", database=database, broker=broker,
                  chains=chains)
    return Response(body, status_code=200 if up else 503)
