"""Buy a time-limited key pass with x402, and claim one bought while it was still settling."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, Router, get, post
from litestar.openapi import ResponseSpec
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.auth.guards import authenticate_key_holder, presented_key
from app.credentials.scopes import PAYMENTS_READ
from app.db.uow import UnitOfWork
from app.errors import NotFound
from app.passes import service as passes
from app.passes.schemas import PendingPayment
from app.payments.schemas import PaymentView
from app.payments.service import Payments
from app.settings import Settings


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


# Open: a claim token is a credential of its own; a key is checked in the handler.
@get("/payments/{payment_id:str}", errors=(401, 403, 409, 429))
async def get_payment(
    request: Request[Any, Any, Any], session: UnitOfWork, settings: Settings,
    payments: Payments, payment_id: str,
) -> PaymentView:
    """With ``X-Claim-Token``: the payment's state, and once settled its result (the key),
    exactly once. With the buyer's key (scope ``payments:read``): the state only."""
    token = request.headers.get("x-claim-token")
    if token is not None:
        return await passes.claim(session, settings, payments, payment_id, token)
    if presented_key(request) is None:
        raise NotFound("Payment not found.")
    # The claim token above is its own credential (the buyer may have no key yet); a key
    # reads payments only with the scope for it.
    caller = await authenticate_key_holder(request, PAYMENTS_READ)
    return await passes.buyers_payment(session, caller, payment_id)


router = Router(path="/v1", route_handlers=[buy_pass], tags=["passes"])
# The claim is a payment's status URL (``statusUrl`` of the 202): documented with payments.
claims_router = Router(path="/v1", route_handlers=[get_payment], tags=["payments"])
