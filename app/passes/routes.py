"""Buy a time-limited key pass with x402."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, Router, post
from litestar.openapi import ResponseSpec
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.db.uow import UnitOfWork
from app.passes import service as passes
from app.payments.service import Payments
from app.settings import Settings


class PendingPayment(msgspec.Struct, rename="camel"):
    """The 202 of a payment still settling when the wait ends (``passes.pending_body``)."""

    payment_id: str
    status: str
    claim_token: str
    status_url: str


@post(
    "/passes/{period:str}",
    status_code=201,
    paid=True,
    responses={202: ResponseSpec(PendingPayment, description="Paid, still settling: fetch the "
                                 "key once from statusUrl with X-Claim-Token.")},
)
async def buy_pass(
    request: Request[Any, Any, Any], settings: Settings, sessions: async_sessionmaker[UnitOfWork],
    payments: Payments, period: str,
) -> Response[dict[str, Any]]:
    """Answers 402 with payment requirements; with a valid payment 201 and the key (shown
    once), or 202 with a claim token when settlement takes longer than the wait window."""
    outcome = await passes.purchase(settings, sessions, payments, period, dict(request.headers))
    return Response(outcome.body, status_code=outcome.status, headers=outcome.headers)


router = Router(path="/v1", route_handlers=[buy_pass], tags=["passes"])
