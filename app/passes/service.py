"""Key passes: a time-limited key bought with x402, issued exactly once after settlement.

The purchase (:func:`purchase`) is this area's flow that needs several transactions:

1. **record**: the payment is verified and recorded, and a signed one handed to the
   settlement signer, in one transaction (``app.payments``); the signer's job is sent once it
   commits;
2. **wait**: up to ``settle_wait`` seconds without holding a transaction, re-reading the
   payment whenever its settlement is announced (``app.payments.waiter``);
3. **fulfil**: in a last transaction, a settled payment's pass key is issued exactly once
   (:func:`fulfill`); a payment still settling gets a claim token instead, and its key is
   fetched once later with it (:func:`claim`, ``GET /v1/payments/{id}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.ext.asyncio import async_sessionmaker

from app.auth.principal import Principal
from app.config.plans import PassSettings
from app.credentials.format import KeyKind
from app.crypto import SecretBox
from app.db.models.payments import Payment
from app.db.types import rfc3339, utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, InvalidDuration, NotFound, PaymentAlreadyUsed, PaymentInvalid
from app.events.service import emit
from app.keys import service as keys
from app.passes import repository
from app.passes.discovery import pass_bazaar
from app.payments import service as payments_service
from app.payments.identifiers import payment_identifier_extension
from app.payments.schemas import PaymentView, payment_view
from app.payments.service import PaidRequest, Payments
from app.settings import Settings
from app.wallets.service import owner_of
from webhooks.events import PassPurchased

WARNING = "Save this API key now. It will not be shown again."


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


def pass_for(settings: Settings, period: str) -> PassSettings:
    """The catalog entry, or INVALID_DURATION before any payment is asked for."""
    for item in settings.passes:
        if item.period == period:
            return item
    periods = ", ".join(p.period for p in settings.passes[:-1])
    last = settings.passes[-1].period if settings.passes else ""
    raise InvalidDuration(f"Use {periods}, or {last}." if periods else f"Use {last}.")


def paid_request(settings: Settings, item: PassSettings) -> PaidRequest:
    path = f"/v1/passes/{item.period}"
    return PaidRequest(
        purpose="pass",
        terms=item.period,
        resource=f"POST {path}",
        resource_url=settings.public_url.rstrip("/") + path,
        price_micros=item.price_micros,
        description=f"{item.period} passgate API key pass",
        extensions={**pass_bazaar(settings, item), **payment_identifier_extension()},
        # The key: a repeat without the payment identifier may come from anyone.
        secret_result=True,
    )


async def _buyer(session: UnitOfWork, payment: Payment) -> str:
    """The agent a pass belongs to.

    A signed authorization (``exact``) proves control of the payer's address: the pass goes to
    that wallet's agent, else to a new agent owning the wallet, so the next pass bought from
    the same wallet lands on the same agent. A pushed transfer proves nothing about who names
    its hash (it is public once broadcast): its pass goes to a new agent of its own, and the
    sender's wallet is neither linked to it nor looked up, so naming someone else's transfer
    can neither capture their later deposits nor reach their agent's credits.
    """
    payer = payment.payer
    if payment.scheme != "exact":
        agent = await repository.add_agent(session, f"x402 push {payment.tx_hash or payment.id}")
        return agent.id
    agent_id = await owner_of(session, payer)
    if agent_id is not None:
        return agent_id
    agent = await repository.add_agent(session, f"x402 {payer}")
    await repository.add_wallet(session, agent.id, payer)
    return agent.id


def _box(settings: Settings) -> SecretBox:
    return SecretBox(settings.key_pepper.get_secret_value())


async def fulfill(session: UnitOfWork, settings: Settings, payment: Payment) -> dict[str, Any]:
    """Issue the pass key for a settled payment exactly once; later calls within the replay
    window get the same body back (sealed at rest), after it PAYMENT_ALREADY_USED."""
    now = utcnow()
    if not await repository.start_fulfilment(session, payment.id, now):
        await session.refresh(payment)
        if payment.result_sealed and payment.result_expires_at and payment.result_expires_at > now:
            body: dict[str, Any] = json.loads(
                _box(settings).open(payment.result_sealed, context=payment.id)
            )
            return body
        raise PaymentAlreadyUsed("This payment's pass was already delivered.")
    item = pass_for(settings, payment.resource.rsplit("/", 1)[-1])
    agent_id = await _buyer(session, payment)
    limits = settings.plan_limits("pass")
    issued = await keys.issue(
        session, settings.key_pepper.get_secret_value(), KeyKind.PASS, agent_id=agent_id,
        label=f"{item.period} pass", scopes=list(settings.pass_scopes), plan="pass",
        expires_at=now + timedelta(seconds=item.seconds), period=item.period,
        created_by=payment.id,
    )
    body = {
        "status": 201,
        "data": {
            "apiKey": issued.secret,
            "expiresAt": rfc3339(issued.key.expires_at),
            "period": item.period,
            "type": "x402",
            "scopes": list(issued.key.scopes),
            "rateLimit": {"requestsPerMinute": limits.per_minute,
                          "requestsPerDay": limits.per_day},
            "warning": WARNING,
        },
    }
    payment.agent_id = agent_id
    payment.result_key_id = issued.key.id
    if settings.payment_replay_seconds > 0:
        payment.result_sealed = _box(settings).seal(json.dumps(body), context=payment.id)
        payment.result_expires_at = now + timedelta(seconds=settings.payment_replay_seconds)
    session.add(payment)
    assert issued.key.expires_at is not None  # a pass always expires
    await emit(
        session,
        PassPurchased(payment_id=payment.id, key_id=issued.key.id, agent_id=agent_id,
                      period=item.period, amount_micros=payment.amount_micros,
                      network=payment.network, payer=payment.payer, transaction=payment.tx_hash,
                      expires_at=issued.key.expires_at, purchased_at=now),
        agent_id=agent_id,
    )
    return body


def pending_body(settings: Settings, payment: Payment, claim_token: str) -> dict[str, Any]:
    return {
        "paymentId": payment.id,
        "status": "pending",
        "claimToken": claim_token,
        "statusUrl": f"{settings.public_url.rstrip('/')}/v1/payments/{payment.id}",
    }


async def purchase(
    settings: Settings, sessions: async_sessionmaker[UnitOfWork], payments: Payments,
    period: str, headers: dict[str, str]
) -> Outcome:
    """402 -> verify -> record -> settle (workers) -> wait -> 201 with the key, or 202."""
    item = pass_for(settings, period)
    paid = paid_request(settings, item)
    async with sessions() as session:
        payment = await payments.accept(session, paid, headers)
        await payments.request_settlement(session, payment)
        await session.commit()
    payment = await payments.wait_until_final(sessions, payment.id, settings.settle_wait)
    if payment.status in ("failed", "expired"):
        raise PaymentInvalid(
            f"The payment {payment.status}: {payment.failure_reason or 'no reason given'}.",
            details={"paymentId": payment.id},
        )
    async with sessions() as session:
        payment = await payments.get(session, payment.id)
        if payment.status == "settled":
            body = await fulfill(session, settings, payment)
            await session.commit()
            name, value = payments.response_header(payment)
            return Outcome(201, body, {name: value})
        token = payments.new_claim_token(payment, settings.key_pepper.get_secret_value())
        session.add(payment)
        await session.commit()
    return Outcome(202, pending_body(settings, payment, token))


async def claim(
    session: UnitOfWork, settings: Settings, payments: Payments, payment_id: str, token: str
) -> PaymentView:
    """With a claim token: the payment's state, and once a pass payment settled its result
    (the key), exactly once; an unknown payment or a wrong token is NOT_FOUND alike."""
    payment = await payments_service.find(session, payment_id)
    pepper = settings.key_pepper.get_secret_value()
    if payment is None or not payments.check_claim_token(payment, pepper, token):
        raise NotFound("Payment not found.")
    if payment.claimed_at is not None:
        raise Conflict("This payment's result was already claimed.")
    if payment.status != "settled" or payment.purpose != "pass":
        return payment_view(payment)
    result = await fulfill(session, settings, payment)
    payment.claimed_at = payment.fulfilled_at
    session.add(payment)
    return payment_view(payment, result)


async def buyers_payment(session: UnitOfWork, caller: Principal, payment_id: str) -> PaymentView:
    """A payment's state, for a key of the agent that bought it (NOT_FOUND for anyone else)."""
    payment = await payments_service.find(session, payment_id)
    if payment is None or payment.agent_id is None or payment.agent_id != caller.agent_id:
        raise NotFound("Payment not found.")
    return payment_view(payment)
