"""Liveness, and the truth about every dependency and background part (503 when degraded)."""

from __future__ import annotations

import msgspec
from litestar import Response, get
from litestar.openapi import ResponseSpec

from app.health.probe import HealthProbe
from app.health.schemas import Health


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
