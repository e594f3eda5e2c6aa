"""Key passes: a time-limited key bought with x402, issued exactly once after settlement."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlmodel import col

from app.config.plans import PassSettings
from app.credentials.format import KeyKind
from app.crypto import SecretBox
from app.db.models.agents import Agent
from app.db.models.payments import Payment
from app.db.models.wallets import Wallet
from app.db.types import rfc3339, utcnow
from app.db.uow import UnitOfWork
from app.errors import InvalidDuration, PaymentAlreadyUsed, PaymentInvalid
from app.events.service import emit
from app.ids import new_id
from app.keys import service as keys
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
        agent = Agent(id=new_id("agt"), name=f"x402 push {payment.tx_hash or payment.id}")
        session.add(agent)
        await session.flush()
        return agent.id
    agent_id = await owner_of(session, payer)
    if agent_id is not None:
        return agent_id
    agent = Agent(id=new_id("agt"), name=f"x402 {payer}")
    session.add(agent)
    await session.flush()
    session.add(Wallet(id=new_id("wal"), agent_id=agent.id, address=payer.lower()))
    await session.flush()
    return agent.id


def _box(settings: Settings) -> SecretBox:
    return SecretBox(settings.key_pepper.get_secret_value())


async def fulfill(session: UnitOfWork, settings: Settings, payment: Payment) -> dict[str, Any]:
    """Issue the pass key for a settled payment exactly once; later calls within the replay
    window get the same body back (sealed at rest), after it PAYMENT_ALREADY_USED."""
    now = utcnow()
    claimed = await session.execute(
        update(Payment)
        .where(col(Payment.id) == payment.id, col(Payment.status) == "settled",
               col(Payment.fulfilled_at).is_(None))
        .values(fulfilled_at=now, updated_at=now)
    )
    if not claimed.rowcount:  # type: ignore[attr-defined]
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
