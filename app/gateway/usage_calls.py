"""Usage-priced gateway calls paid per call with x402 ``upto`` (Permit2).

A provider with ``usagePricing`` offers ``upto`` for its maximum beside the ``exact`` offer of
its fixed price (``app.gateway.paid``). A call paid with ``upto``:

1. **accept**: the Permit2 authorization is verified with the SDK and recorded ``pending``
   (``app.payments.upto``); **reopen** and **take** as for ``exact`` (one call per payment; a
   call that failed upstream may be retried with the same authorization); a retry with the
   ``payment-identifier`` of a call already made gets its kept answer (``app.gateway.answers``)
   with the same ``PAYMENT-RESPONSE``, never a new call;
2. **forward**: the answer is read whole (its usage decides the charge);
3. not 2xx: the payment ``failed``, nothing is charged or sent to the chain;
4. 2xx: the usage is read (``app.gateway.usage_pricing``), the amount (never more than
   authorized) is handed to the settlement signer, and once settled the answer is served with
   ``PAYMENT-RESPONSE`` carrying the amount actually charged; the usage row records it as the
   call's cost. The answer (with that cost) is kept for the identifier's retries in the
   transaction that hands the payment to the signer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Mapping

from litestar.response.base import ASGIResponse

from app.db.models.gateway import SUCCEEDED
from app.db.types import utcnow
from app.errors import PaymentInvalid
from app.gateway import answers, repository
from app.gateway import paid as per_call
from app.gateway.headers import COST
from app.gateway.incoming import IncomingCall
from app.gateway.paid import (
    PaidContext,
    failed_call,
    paid_request,
    payment_headers,
    reopen_after_upstream_failure,
    take_for_one_call,
)
from app.gateway.pricing import Quote
from app.gateway.relay import BufferedRelay
from app.gateway.service import Forwarded, Gateway
from app.gateway.usage_pricing import charge_for_answer
from app.metrics.instruments import gateway_charged
from app.payments.acceptance import PaidRequest, challenge_error
from app.payments.service import Payments
from app.payments.upto import accept_upto, settle_upto
from chain.x402 import PaymentHeaderError
from chain.x402.upto import UptoPayment, decode_upto_payment

log = logging.getLogger("passgate.gateway")


async def pay_per_call(
    ctx: PaidContext, payments: Payments, gateway: Gateway, call: IncomingCall,
    headers: Mapping[str, str],
) -> ASGIResponse:
    """A call without a key: an ``upto`` payment for a usage-priced provider is this module's
    flow; anything else is ``app.gateway.paid``'s (its 402 offers upto too)."""
    if payments.chain.configured:
        quote = await gateway.quote(call)
        pricing = quote.provider.usage_pricing
        if pricing is not None:
            paid = paid_request(ctx, call, quote.price_micros, pricing)
            upto = upto_payment(payments, paid, headers)
            if upto is not None:
                return await call_with_upto(ctx, payments, gateway, call, quote, paid, upto)
    return await per_call.pay_per_call(ctx, payments, gateway, call, headers)


def upto_payment(payments: Payments, paid: PaidRequest,
                 headers: Mapping[str, str]) -> UptoPayment | None:
    """The request's ``upto`` payment, if it carries one (a malformed one: PAYMENT_INVALID)."""
    try:
        return decode_upto_payment(headers)
    except PaymentHeaderError as exc:
        raise challenge_error(PaymentInvalid, payments.challenge(paid), str(exc)) from None


async def call_with_upto(
    ctx: PaidContext, payments: Payments, gateway: Gateway, call: IncomingCall, quote: Quote,
    paid: PaidRequest, upto: UptoPayment,
) -> ASGIResponse:
    """The upto flow (the module docstring's steps) for a usage-priced provider."""
    pricing = quote.provider.usage_pricing
    assert pricing is not None
    assert paid.upto_max_micros is not None
    async with ctx.sessions() as session:
        payment = await accept_upto(payments.chain, session, paid, upto)
        await session.commit()
    replayed = answers.answered(ctx.settings, payment, head=call.method == "HEAD")
    if replayed is not None:
        payment_headers(payments, payment, replayed.raw_headers)
        return replayed
    payment = await reopen_after_upstream_failure(ctx, payment)
    await take_for_one_call(ctx, payment)

    at_most = dataclasses.replace(quote, price_micros=paid.upto_max_micros)
    forwarded = await gateway.forward_unsettled(call, at_most, payment_id=payment.id,
                                                whole=True)
    if not forwarded.ok:
        return await failed_call(ctx, payment.id, forwarded)

    response = forwarded.response
    assert isinstance(response, BufferedRelay)
    amount, _units = charge_for_answer(pricing, quote.provider.name, bytes(response.body),
                                       _content_type(forwarded))
    try:
        async with ctx.sessions() as session:
            fresh = await payments.get(session, payment.id)
            # Never more than the client authorized, whatever the price settings say now.
            amount = min(amount, fresh.authorized_micros or 0)
            _set_header(forwarded, COST, str(amount).encode())
            answers.keep(ctx.settings, ctx.sessions, fresh, response)
            await settle_upto(payments.chain, session, fresh, amount)
            await session.commit()
    except BaseException:
        await gateway.finish_unsettled(forwarded, settled=False)
        raise
    try:
        final = await payments.wait_until_final(ctx.sessions, payment.id,
                                                ctx.settings.settle_wait)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.warning("upto gateway call: could not wait for payment %s", payment.id,
                    exc_info=True)
        final = None
    if final is not None and final.status in ("failed", "expired"):
        await gateway.finish_unsettled(forwarded, settled=False)
        raise PaymentInvalid(f"The payment {final.status}: {final.failure_reason}.",
                             details={"paymentId": final.id})
    charged = final.amount_micros if final is not None else amount
    await _record_cost(ctx, forwarded, charged)
    _set_header(forwarded, COST, str(charged).encode())
    if final is not None and final.status == "settled":
        name, value = payments.response_header(final)
        forwarded.headers.append((name.lower().encode(), value.encode()))
        return response
    status = "submitted" if final is None else final.status
    forwarded.headers.append((b"x-payment-id", payment.id.encode()))
    forwarded.headers.append((b"x-payment-status", status.encode()))
    return response


def _content_type(forwarded: Forwarded) -> str:
    for name, value in forwarded.headers:
        if name == b"content-type":
            return value.decode("latin-1")
    return ""


def _set_header(forwarded: Forwarded, name: bytes, value: bytes) -> None:
    forwarded.headers[:] = [(n, v) for n, v in forwarded.headers if n != name]
    forwarded.headers.append((name, value))


async def _record_cost(ctx: PaidContext, forwarded: Forwarded, charged: int) -> None:
    """The usage row of a paid upto call: succeeded, costing what was charged."""
    outcome = forwarded.outcome
    async with ctx.sessions() as session:
        await repository.finish_usage(session, forwarded.usage_id, {
            "status": SUCCEEDED,
            "cost_micros": charged,
            "upstream_status": outcome.upstream_status if outcome else forwarded.status,
            "latency_ms": outcome.latency_ms if outcome else None,
            "upstream_request_id": outcome.upstream_request_id if outcome else None,
            "completed_at": utcnow(),
        })
        await session.commit()
    gateway_charged(forwarded.provider, "x402", charged)
