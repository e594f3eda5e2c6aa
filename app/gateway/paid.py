"""Pay-per-call gateway requests with x402: verify, forward, and settle only on a 2xx.

The payment is verified and recorded (``pending``) first, then the call goes upstream. Only an
upstream 2xx sends the authorization to the settlement signer; a failed call marks the payment
``failed`` with the authorization still unused on chain, so nothing is ever charged for it and
the caller may retry the very same payment. Pushed transfers are refused here: money that has
already moved could not be handed back when the upstream fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from litestar.response.base import ASGIResponse
from sqlalchemy import update
from sqlmodel import col

from app.db.hooks import commit
from app.db.types import utcnow
from app.errors import PaymentAlreadyUsed, PaymentInvalid
from app.gateway.proxy import IncomingCall
from app.gateway.service import Gateway
from app.payments.models import Payment
from app.payments.service import PaidRequest, Payments, mark_failed
from app.runtime import Runtime

UPSTREAM_FAILED = "upstream_failed"


def paid_request(rt: Runtime, call: IncomingCall, price_micros: int) -> PaidRequest:
    path = f"/v1/gateway/{call.provider}{call.path}"
    body_hash = hashlib.sha256(call.body).hexdigest()
    query = call.query.decode("latin-1")
    return PaidRequest(
        purpose="gateway",
        # The same payment may only pay for the same call (method, path, query, body).
        terms=f"{call.method} {path}?{query} {body_hash}",
        resource=f"{call.method} {path}",
        resource_url=rt.settings.public_url.rstrip("/") + path,
        price_micros=price_micros,
        description=f"one call to the {call.provider} API",
    )


async def _reopen_after_upstream_failure(rt: Runtime, payment: Payment) -> Payment:
    """A payment whose call failed upstream was never settled: the same authorization may pay
    for a retry of the same call."""
    if payment.status == "settled":
        raise PaymentAlreadyUsed("This payment already paid for a call.")
    if payment.status == "failed" and (payment.failure_reason or "").startswith(UPSTREAM_FAILED):
        async with rt.sessions() as session:
            await session.execute(
                update(Payment)
                .where(col(Payment.id) == payment.id, col(Payment.status) == "failed")
                .values(status="pending", failure_reason=None, updated_at=utcnow())
            )
            await commit(session)
            payment = await session.get(Payment, payment.id, populate_existing=True) or payment
    if payment.status not in ("pending",):
        raise PaymentInvalid(f"This payment is {payment.status} and cannot pay for a call.")
    return payment


async def call_with_x402(
    rt: Runtime, payments: Payments, gateway: Gateway, call: IncomingCall,
    headers: Mapping[str, str],
) -> ASGIResponse:
    quote = await gateway.quote(call)
    paid = paid_request(rt, call, quote.price_micros)
    async with rt.sessions() as session:
        payment = await payments.accept(session, paid, headers)
        await commit(session)
    if payment.scheme != "exact":
        async with rt.sessions() as session:
            await mark_failed(session, payment.id, "pushed transfers cannot pay per call")
            await commit(session)
        raise PaymentInvalid(
            "Gateway calls take a signed authorization (PAYMENT-SIGNATURE or X-PAYMENT): a "
            "pushed transfer could not be returned if the upstream failed."
        )
    payment = await _reopen_after_upstream_failure(rt, payment)

    forwarded = await gateway.forward_unsettled(call, quote, payment_id=payment.id)
    if not forwarded.ok:
        async with rt.sessions() as session:
            await mark_failed(session, payment.id,
                              f"{UPSTREAM_FAILED}: upstream answered {forwarded.status}",
                              redis=rt.redis, redis_prefix=rt.settings.redis_prefix)
            await commit(session)
        if forwarded.error is not None:
            raise forwarded.error
        assert forwarded.response is not None
        return forwarded.response

    async with rt.sessions() as session:
        fresh = await payments.get(session, payment.id)
        await payments.request_settlement(session, fresh)
        await commit(session)
    final = await payments.wait_until_final(rt.sessions, payment.id, rt.settings.settle_wait)
    response = forwarded.response
    assert response is not None
    if final.status == "settled":
        await gateway.finish_unsettled(forwarded, settled=True)
        name, value = payments.response_header(final)
        forwarded.headers.append((name.lower().encode(), value.encode()))
        return response
    if final.status in ("failed", "expired"):
        await gateway.finish_unsettled(forwarded, settled=False)
        raise PaymentInvalid(f"The payment {final.status}: {final.failure_reason}.",
                             details={"paymentId": final.id})
    # Still settling after the wait: the upstream answer is served; the signer finishes the
    # settlement and the outcome can be read at /v1/payments/{id}.
    await gateway.finish_unsettled(forwarded, settled=True)
    forwarded.headers.append((b"x-payment-id", final.id.encode()))
    forwarded.headers.append((b"x-payment-status", final.status.encode()))
    return response
