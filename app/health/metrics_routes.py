"""``GET /metrics``: Prometheus' text format (open, or behind ``PASSGATE_METRICS_TOKEN``)."""

from __future__ import annotations

import asyncio

from litestar import Response, get

from app.auth.guards import METRICS
from app.health.metrics_state import StateReader
from app.metrics.exposition import exposition


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
