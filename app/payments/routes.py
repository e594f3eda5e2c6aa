"""Payment status and the one-time result of a payment that settled after its request."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Router, get

from app.auth.guards import authenticate_key_holder, presented_key
from app.credentials.scopes import PAYMENTS_READ
from app.db.models.payments import Payment
from app.db.types import rfc3339
from app.db.uow import UnitOfWork
from app.errors import Conflict, NotFound
from app.passes import service as passes
from app.payments.service import Payments
from app.settings import Settings


class PaymentView(msgspec.Struct, rename="camel"):
    payment_id: str
    status: str
    purpose: str
    network: str
    payer: str
    amount_micros: int
    transaction: str | None
    reason: str | None
    created_at: str
    settled_at: str | None
    result: dict[str, Any] | None = None


def payment_view(payment: Payment, result: dict[str, Any] | None = None) -> PaymentView:
    return PaymentView(
        payment_id=payment.id, status=payment.status, purpose=payment.purpose,
        network=payment.network, payer=payment.payer, amount_micros=payment.amount_micros,
        transaction=payment.tx_hash, reason=payment.failure_reason,
        created_at=rfc3339(payment.created_at) or "", settled_at=rfc3339(payment.settled_at),
        result=result,
    )


# Open: a claim token is a credential of its own; a key is checked in the handler.
@get("/payments/{payment_id:str}", errors=(401, 403, 409, 429))
async def get_payment(
    request: Request[Any, Any, Any], session: UnitOfWork, settings: Settings,
    payments: Payments, payment_id: str,
) -> PaymentView:
    """With ``X-Claim-Token``: the payment's state, and once settled its result (the key),
    exactly once. With the buyer's key (scope ``payments:read``): the state only."""
    payment = await session.get(Payment, payment_id)
    token = request.headers.get("x-claim-token")
    if token is not None:
        pepper = settings.key_pepper.get_secret_value()
        if payment is None or not payments.check_claim_token(payment, pepper, token):
            raise NotFound("Payment not found.")
        if payment.claimed_at is not None:
            raise Conflict("This payment's result was already claimed.")
        if payment.status != "settled" or payment.purpose != "pass":
            return payment_view(payment)
        result = await passes.fulfill(session, settings, payment)
        payment.claimed_at = payment.fulfilled_at
        session.add(payment)
        return payment_view(payment, result)
    if presented_key(request) is None:
        raise NotFound("Payment not found.")
    # The claim token above is its own credential (the buyer may have no key yet); a key
    # reads payments only with the scope for it.
    caller = await authenticate_key_holder(request, PAYMENTS_READ)
    if payment is None or payment.agent_id is None or payment.agent_id != caller.agent_id:
        raise NotFound("Payment not found.")
    return payment_view(payment)


router = Router(path="/v1", route_handlers=[get_payment], tags=["payments"])
