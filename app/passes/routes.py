"""Buy a time-limited key pass with x402."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, post

from app.auth.guards import runtime_of
from app.passes import service as passes
from app.payments.runtime import payments_of


@post("/passes/{period:str}", status_code=201)
async def buy_pass(request: Request[Any, Any, Any], period: str) -> Response[dict[str, Any]]:
    """Answers 402 with payment requirements; with a valid payment 201 and the key (shown
    once), or 202 with a claim token when settlement takes longer than the wait window."""
    rt = runtime_of(request)
    outcome = await passes.purchase(rt, payments_of(rt), period, dict(request.headers))
    return Response(outcome.body, status_code=outcome.status, headers=outcome.headers)


router = Router(path="/v1", route_handlers=[buy_pass], tags=["passes"])
