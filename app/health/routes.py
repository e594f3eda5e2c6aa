"""Liveness, the truth about every dependency and background part (503 when degraded), and
``GET /metrics`` in Prometheus' text format (open, or behind ``PASSGATE_METRICS_TOKEN``)."""

from __future__ import annotations

import asyncio

from litestar import Response, get
from litestar.openapi import ResponseSpec

from app.auth.guards import METRICS
from app.health.metrics_state import StateReader
from app.health.schemas import Health, Live
from app.health.service import HealthProbe
from app.metrics.exposition import exposition


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
async def health(health_probe: HealthProbe) -> Response[Health]:
    """Database, broker, each chain watcher, the settlement signer (configured, gas money),
    webhook delivery, the scheduler and every periodic job (last success, lag), the oldest
    unsettled payment and undelivered webhook, and work parked for an operator.

    ``status`` is ``degraded`` with a 503, and ``reasons`` lists why, when a dependency is
    down or a part that should run does not: see ``app.health.verdict``. Fast by design: a
    few indexed reads, and the signer's balance cached for a few seconds.
    """
    report = await health_probe.report()
    return Response(report, status_code=503 if report.reasons else 200)


@get("/metrics", before_request=METRICS, tags=["health"], media_type="text/plain; version=0.0.4")
async def metrics(state_reader: StateReader) -> Response[bytes]:
    """Counters and histograms of what happened (HTTP requests by route template and status,
    settlements, webhook attempts, gateway calls and charges, rate-limit refusals), and
    states read from the database and the broker when scraped (payments by status, chain
    watchers' head, cursor and lag, backlogs, queue depth). See the README for every name."""
    families = await state_reader.families()
    # Reading other processes' files and rendering is blocking work.
    body = await asyncio.to_thread(exposition, families)
    # The classic text format (0.0.4) every Prometheus reads; Litestar adds the charset.
    return Response(body, media_type="text/plain; version=0.0.4")
