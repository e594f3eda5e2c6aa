"""Pay-per-call gateway requests with x402: verify, forward, and settle only on a 2xx.

The payment is verified and recorded (``pending``) first, then one request takes it for the
call (duplicates of the same authorization get PAYMENT_ALREADY_USED) and the call goes upstream.
Only an upstream 2xx sends the authorization to the settlement signer; a failed call marks the
payment ``failed`` with the authorization still unused on chain, so nothing is ever charged for
it and the caller may retry the very same payment. Pushed transfers are refused before anything
is recorded: money that has already moved could not be handed back when the upstream fails, and
the transfer stays on chain for an operator to see as unmatched.

The flow takes several transactions, each committed before the next step
(:func:`call_with_x402`):

1. **accept**: the authorization is verified and the payment recorded ``pending``;
2. **reopen**: a payment whose earlier call failed upstream is ``pending`` again;
3. **take**: exactly one request gets to forward the call the payment pays for;
4. **forward**: the usage row is written ``pending`` and the call goes upstream
   (``Gateway.forward_unsettled``);
5. not 2xx: the payment is marked ``failed`` (the usage row already is); 2xx: the settlement
   is requested (the signer's job, committed) and waited for, then the usage row is kept or
   released (``Gateway.finish_unsettled``).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from litestar.response.base import ASGIResponse
from sqlalchemy.ext.asyncio import async_sessionmaker

from app.config.providers import UsagePricing
from app.db.models.payments import Payment
from app.db.uow import UnitOfWork
from app.errors import Conflict, PaymentAlreadyUsed, PaymentInvalid, Unauthorized
from app.gateway import answers, repository
from app.gateway.discovery import call_bazaar
from app.gateway.incoming import IncomingCall
from app.gateway.relay import RelayedResponse
from app.gateway.service import Forwarded, Gateway
from app.payments.identifiers import payment_identifier_extension
from app.payments.service import PaidRequest, Payments, mark_failed
from app.settings import Settings
from app.siwx.challenge import siwx_extension

UPSTREAM_FAILED = "upstream_failed"
# A 2xx passgate could not pass on (its body broke off, or a usage-priced answer was too large
# to read): the upstream did the work, so the same authorization never pays for another try.
ANSWER_DROPPED = "answer_dropped"

log = logging.getLogger("passgate.gateway")


@dataclass(frozen=True, slots=True)
class PaidContext:
    """What a per-call x402 payment needs beside the payments object: several transactions
    (reserve, forward, settle) and the settlement notifications."""

    settings: Settings
    sessions: async_sessionmaker[UnitOfWork]
    redis: Any = None


def paid_request(ctx: PaidContext, call: IncomingCall, price_micros: int,
                 usage_pricing: UsagePricing | None = None) -> PaidRequest:
    """What an x402 payment for this call must pay: its price (or, priced by usage, at most its
    maximum with ``upto``), for exactly this call."""
    path = f"/v1/gateway/{call.provider}{call.path}"
    body_hash = hashlib.sha256(call.body).hexdigest()
    query = call.query.decode("latin-1")
    resource_url = ctx.settings.public_url.rstrip("/") + path
    return PaidRequest(
        purpose="gateway",
        # The same payment may only pay for the same call (method, path, query, body).
        terms=f"{call.method} {path}?{query} {body_hash}",
        resource=f"{call.method} {path}",
        resource_url=resource_url,
        price_micros=price_micros,
        description=f"one call to the {call.provider} API",
        # The discovery description (bazaar), idempotent retries (payment-identifier), and
        # sign-in for a wallet that owns a pass or credits instead of paying (app.siwx).
        extensions={**call_bazaar(call), **payment_identifier_extension(),
                    **siwx_extension(ctx.settings, resource_url)},
        upto_max_micros=usage_pricing.max_micros if usage_pricing is not None else None,
    )


async def reopen_after_upstream_failure(ctx: PaidContext, payment: Payment) -> Payment:
    """A payment whose call failed upstream was never settled: the same authorization may pay
    for a retry of the same call."""
    if payment.status == "settled":
        raise PaymentAlreadyUsed("This payment already paid for a call.")
    if payment.status == "failed" and (payment.failure_reason or "").startswith(UPSTREAM_FAILED):
        async with ctx.sessions() as session:
            await repository.reopen_payment(session, payment.id)
            await session.commit()
            payment = await repository.payment_as_stored(session, payment.id) or payment
    if payment.status not in ("pending",):
        raise PaymentInvalid(f"This payment is {payment.status} and cannot pay for a call.")
    return payment


async def take_for_one_call(ctx: PaidContext, payment: Payment) -> None:
    """Let exactly one request forward the call a pending payment pays for.

    The same authorization sent again (a retry, concurrent duplicates, other processes) finds
    the same pending payment; without this, each of them would get an upstream answer for one
    payment. ``fulfilled_at`` marks the payment's call as handed upstream; a call that fails
    upstream clears it when the payment is reopened for a retry.
    """
    async with ctx.sessions() as session:
        taken = await repository.take_payment_for_call(session, payment.id)
        await session.commit()
    if not taken and payment.payment_identifier is not None:
        raise Conflict(answers.IN_PROGRESS, details={"paymentId": payment.id})
    if not taken:
        raise PaymentAlreadyUsed("This payment is already paying for a call in progress.",
                                 details={"paymentId": payment.id})


async def failed_call(ctx: PaidContext, payment_id: str, forwarded: Forwarded) -> ASGIResponse:
    """A call the upstream did not answer 2xx: its payment fails (never settled, never
    charged) and the caller gets the upstream's answer, or its ``UPSTREAM_ERROR``."""
    answered = forwarded.status is not None and 200 <= forwarded.status < 300
    reason = ANSWER_DROPPED if answered else UPSTREAM_FAILED
    async with ctx.sessions() as session:
        await mark_failed(session, payment_id,
                          f"{reason}: upstream answered {forwarded.status}",
                          redis=ctx.redis, redis_prefix=ctx.settings.redis_prefix)
        await session.commit()
    if forwarded.error is not None:
        raise forwarded.error
    assert forwarded.response is not None
    return forwarded.response


async def pay_per_call(
    ctx: PaidContext, payments: Payments, gateway: Gateway, call: IncomingCall,
    headers: Mapping[str, str],
) -> ASGIResponse:
    """A call without a key: paid with x402 (402 with the price first), settled only when
    the upstream answered 2xx; UNAUTHORIZED on a server that takes no per-call payments."""
    if not payments.chain.configured:
        raise Unauthorized("Missing API key (this server takes no per-call payments).")
    return await call_with_x402(ctx, payments, gateway, call, headers)


async def call_with_x402(
    ctx: PaidContext, payments: Payments, gateway: Gateway, call: IncomingCall,
    headers: Mapping[str, str],
) -> ASGIResponse:
    """The per-call x402 flow (the module docstring's steps), the chain configured."""
    quote = await gateway.quote(call)
    paid = paid_request(ctx, call, quote.price_micros, quote.provider.usage_pricing)
    async with ctx.sessions() as session:
        payment = await payments.accept(session, paid, headers, signed_only=True)
        await session.commit()
    # A retry with the payment identifier of a call already made: its answer, never a new call.
    replayed = answers.answered(ctx.settings, payment, head=call.method == "HEAD")
    if replayed is not None:
        payment_headers(payments, payment, replayed.raw_headers)
        return replayed
    payment = await reopen_after_upstream_failure(ctx, payment)
    await take_for_one_call(ctx, payment)

    forwarded = await gateway.forward_unsettled(call, quote, payment_id=payment.id)
    if not forwarded.ok:
        return await failed_call(ctx, payment.id, forwarded)

    try:
        async with ctx.sessions() as session:
            fresh = await payments.get(session, payment.id)
            answers.keep(ctx.settings, ctx.sessions, fresh, forwarded.response)
            await payments.request_settlement(session, fresh)
            await session.commit()
    except BaseException:
        # Not handed to the signer, so never charged: the answer is not served either, and
        # its upstream connection goes back to the pool.
        await gateway.finish_unsettled(forwarded, settled=False)
        raise
    response = forwarded.response
    assert response is not None
    try:
        final = await payments.wait_until_final(ctx.sessions, payment.id,
                                                ctx.settings.settle_wait)
    except asyncio.CancelledError:
        # The caller left while the signer settles: the answer will never be sent.
        if isinstance(response, RelayedResponse):
            await response.aclose()
        raise
    except Exception:
        # Handed to the signer, which may well settle it: served as still settling (below).
        log.warning("x402 gateway call: could not wait for payment %s", payment.id,
                    exc_info=True)
        final = None
    if final is not None and final.status in ("failed", "expired"):
        await gateway.finish_unsettled(forwarded, settled=False)
        raise PaymentInvalid(f"The payment {final.status}: {final.failure_reason}.",
                             details={"paymentId": final.id})
    await gateway.finish_unsettled(forwarded, settled=True)
    payment_headers(payments, final or payment, forwarded.headers, unknown=final is None)
    return response


def payment_headers(payments: Payments, payment: Payment, headers: list[tuple[bytes, bytes]],
                     *, unknown: bool = False) -> None:
    """PAYMENT-RESPONSE for a settled payment; else, still settling after the wait, the
    payment's id and status (the signer finishes, the outcome is at /v1/payments/{id})."""
    if not unknown and payment.status == "settled":
        name, value = payments.response_header(payment)
        headers.append((name.lower().encode(), value.encode()))
        return
    status = "submitted" if unknown else payment.status
    headers.append((b"x-payment-id", payment.id.encode()))
    headers.append((b"x-payment-status", status.encode()))
