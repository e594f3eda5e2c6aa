"""x402 payments: answer with requirements, verify and record a payment exactly once, follow it
to settlement, and replay the outcome of an identical retry.

A payment is recorded before anything is settled, under unique (network, nonce) and (network,
tx hash) indexes: a second request carrying the same payment either is the same purchase
(same fingerprint: it gets the same outcome) or is refused with PAYMENT_ALREADY_USED.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from app.attention.filters import not_parked
from app.db.models.attention import PAYMENT_EXPIRY
from app.db.models.payments import Payment
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import (
    NotFound,
    PaymentAlreadyUsed,
    PaymentInvalid,
    PaymentRequired,
    ServiceUnavailable,
)
from app.events.service import emit
from app.ids import new_id
from app.logs import context as log_context
from app.metrics.instruments import SETTLEMENT_SECONDS
from app.payments import binding
from app.payments.chain import PaymentChain
from app.payments.waiter import SettlementWaiter, announce_settled
from app.signer.service import request_settlement
from app.transfers import service as transfers
from app.transfers.purposes import PAYMENT, Counted
from chain.errors import RpcError, RpcUnavailable
from chain.usdc import TransferAuthorization
from chain.x402 import (
    PaymentChallenge,
    PaymentHeaderError,
    PushedPayment,
    SignedPayment,
    decode_payment,
    settlement_response_header,
    verify_pushed_transfer,
    verify_signed_payment,
)
from chain.x402.headers import PAYMENT_REQUIRED
from webhooks.events import (
    EventData,
    PaymentExpired,
    PaymentFailed,
    PaymentPending,
    PaymentSettled,
)

FINAL = frozenset({"settled", "failed", "expired"})

# The settlement signer keeps validBefore exactly (a BIGINT) and must submit it unchanged, since
# the signature covers it: a later one cannot be stored, so it is refused rather than clamped.
MAX_VALID_BEFORE = 2**63 - 1
# Payment.valid_before only decides when we give up on the payment, and a datetime ends at year
# 9999: anything later is the same "never" (a year of headroom for time-zone arithmetic).
_NEVER = datetime(9999, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class PaidRequest:
    """What a paid route sells: ``terms`` distinguish purchases (the pass period, the call)."""

    purpose: str
    terms: str
    resource: str
    resource_url: str
    price_micros: int
    description: str


def _fingerprint(paid: PaidRequest, network: str, identity: str) -> str:
    raw = f"{paid.purpose}|{paid.terms}|{paid.price_micros}|{network}|{identity.lower()}"
    return hashlib.sha256(raw.encode()).hexdigest()


def _deadline(valid_before: int) -> datetime:
    if valid_before >= _NEVER.timestamp():
        return _NEVER
    return datetime.fromtimestamp(valid_before, UTC)


def _challenge_error(
    exc_type: type[PaymentRequired] | type[PaymentInvalid] | type[PaymentAlreadyUsed],
    challenge: PaymentChallenge,
    message: str,
    details: Any = None,
) -> PaymentRequired | PaymentInvalid | PaymentAlreadyUsed:
    """Every 402 carries the requirements, so a client can pay (again) straight away."""
    return exc_type(
        message,
        details=details,
        headers={PAYMENT_REQUIRED: challenge.header_value()},
        body=challenge.v1_body(),
    )


def _no_signer() -> ServiceUnavailable:
    return ServiceUnavailable(
        "Signed x402 payments cannot be settled: this server has no settlement signer "
        "(PASSGATE_CHAIN_SIGNER_PRIVATE_KEY). Nothing was recorded or charged."
    )


def event_data(payment: Payment, event: str, asset: str | None = None) -> EventData:
    """The ``data`` of a ``payment.*`` event."""
    now = utcnow()
    if event == "payment.pending":
        return PaymentPending(payment_id=payment.id, agent_id=payment.agent_id,
                              amount_micros=payment.amount_micros, network=payment.network,
                              asset=asset or "", pay_to=payment.pay_to, payer=payment.payer,
                              resource=payment.resource, created_at=payment.created_at)
    if event == "payment.settled":
        return PaymentSettled(payment_id=payment.id, agent_id=payment.agent_id,
                              amount_micros=payment.amount_micros, network=payment.network,
                              asset=asset or "", pay_to=payment.pay_to, payer=payment.payer,
                              transaction=payment.tx_hash or "",
                              settled_at=payment.settled_at or now)
    if event == "payment.failed":
        return PaymentFailed(payment_id=payment.id, agent_id=payment.agent_id,
                             amount_micros=payment.amount_micros, network=payment.network,
                             payer=payment.payer, reason=payment.failure_reason or "unknown",
                             failed_at=now)
    return PaymentExpired(payment_id=payment.id, agent_id=payment.agent_id,
                          amount_micros=payment.amount_micros, network=payment.network,
                          expired_at=now)


class Payments:
    """The payment flow of one API process (chain access, waiting for settlement)."""

    def __init__(self, chain: PaymentChain, waiter: SettlementWaiter, redis: Any,
                 redis_prefix: str) -> None:
        self.chain = chain
        self.waiter = waiter
        # Settlement notifications (None: in-process only, the embedded mode).
        self.redis = redis
        self.redis_prefix = redis_prefix

    # -- challenge and acceptance -------------------------------------------------------

    def _asset(self, network: str) -> str:
        found = self.chain.networks.get(network)
        return found.usdc_address if found else ""

    def challenge(self, paid: PaidRequest) -> PaymentChallenge:
        return self.chain.challenge(paid.price_micros, paid.resource_url, paid.description)

    async def accept(
        self, session: UnitOfWork, paid: PaidRequest, headers: Mapping[str, str], *,
        signed_only: bool = False,
    ) -> Payment:
        """Verify the payment in ``headers`` and record it (or find the one it repeats).

        ``signed_only`` refuses a pushed transfer before anything is looked up or recorded.
        Without a settlement signer a signed payment is refused (503) before it is verified or
        recorded, and a route taking only signed payments answers 503 rather than a 402 it
        could not honour; a pushed transfer needs no signer (the chain watcher confirms it).
        Raises PaymentRequired (no payment), PaymentInvalid, PaymentAlreadyUsed,
        ServiceUnavailable. Commits.
        """
        challenge = self.challenge(paid)
        try:
            decoded = decode_payment(headers, self.chain.networks.values())
        except PaymentHeaderError as exc:
            raise _challenge_error(PaymentInvalid, challenge, str(exc)) from None
        if decoded is None:
            if signed_only and not self.chain.can_settle_signed:
                raise _no_signer()
            raise _challenge_error(PaymentRequired, challenge,
                                   f"Payment required: {paid.description}.")
        if isinstance(decoded, PushedPayment):
            if signed_only:
                raise _challenge_error(
                    PaymentInvalid, challenge,
                    f"{paid.description.capitalize()} takes a signed authorization "
                    "(PAYMENT-SIGNATURE or X-PAYMENT): a pushed transfer could not be handed "
                    "back if the call failed.",
                )
            payment = await self._accept_pushed(session, paid, challenge, decoded)
        else:
            payment = await self._accept_signed(session, paid, challenge, decoded)
        log_context.bind(payment_id=payment.id)
        return payment

    async def _existing(
        self, session: UnitOfWork, network: str, *, nonce: str | None = None,
        tx_hash: str | None = None,
    ) -> Payment | None:
        stmt = select(Payment).where(col(Payment.network) == network)
        if nonce is not None:
            stmt = stmt.where(col(Payment.auth_nonce) == nonce)
        else:
            # A signed payment that settled through this transaction is not a pushed one: see
            # app.payments.binding for why such a hash is refused.
            stmt = stmt.where(col(Payment.tx_hash) == tx_hash, col(Payment.scheme) == "push")
        return (await session.exec(stmt)).first()

    @staticmethod
    def _replay_or_refuse(
        existing: Payment, fingerprint: str, challenge: PaymentChallenge
    ) -> Payment:
        if existing.fingerprint != fingerprint:
            raise _challenge_error(
                PaymentAlreadyUsed, challenge,
                "This payment was already used for another purchase.",
                details={"paymentId": existing.id},
            )
        return existing

    async def _record(
        self, session: UnitOfWork, payment: Payment, challenge: PaymentChallenge, *,
        nonce: str | None, tx_hash: str | None,
    ) -> Payment:
        session.add(payment)
        try:
            await session.flush()
        except IntegrityError:
            # Another request (maybe in another process) recorded this payment first.
            await session.rollback()
            existing = await self._existing(session, payment.network, nonce=nonce, tx_hash=tx_hash)
            if existing is None:
                raise
            return self._replay_or_refuse(existing, payment.fingerprint, challenge)
        await emit(session, event_data(payment, "payment.pending", self._asset(payment.network)),
                   agent_id=payment.agent_id)
        return payment

    async def _accept_signed(
        self, session: UnitOfWork, paid: PaidRequest, challenge: PaymentChallenge,
        signed: SignedPayment,
    ) -> Payment:
        offer = challenge.offer_for(signed.network)
        network = offer.network.name if offer else signed.network
        nonce = signed.authorization.nonce.lower()
        fingerprint = _fingerprint(paid, network, nonce)
        existing = await self._existing(session, network, nonce=nonce)
        if existing is not None:
            return self._replay_or_refuse(existing, fingerprint, challenge)
        if not self.chain.can_settle_signed:
            raise _no_signer()
        if signed.authorization.valid_before > MAX_VALID_BEFORE:
            raise _challenge_error(
                PaymentInvalid, challenge,
                f"validBefore must be at most {MAX_VALID_BEFORE} (unix seconds).",
                details={"reason": "valid_before_too_late"},
            )
        try:
            verdict = await verify_signed_payment(signed, challenge, self.chain.clients())
        except (RpcUnavailable, RpcError) as exc:
            raise ServiceUnavailable(f"The {network} node did not answer: {exc}") from None
        if not verdict.ok:
            error = PaymentAlreadyUsed if verdict.already_used else PaymentInvalid
            raise _challenge_error(error, challenge, verdict.message,
                                   details={"reason": verdict.reason})
        auth = verdict.authorization
        payment = Payment(
            id=new_id("pay"),
            purpose=paid.purpose,
            resource=paid.resource,
            fingerprint=fingerprint,
            network=verdict.network,
            scheme="exact",
            x402_version=signed.version,
            payer=verdict.payer.lower(),
            pay_to=auth.to_address.lower(),
            amount_micros=verdict.amount,
            auth_nonce=nonce,
            authorization={
                "from": auth.from_address, "to": auth.to_address, "value": str(auth.value),
                "validAfter": str(auth.valid_after), "validBefore": str(auth.valid_before),
                "nonce": auth.nonce, "signature": verdict.signature,
            },
            valid_before=_deadline(verdict.valid_before),
        )
        return await self._record(session, payment, challenge, nonce=nonce, tx_hash=None)

    async def _accept_pushed(
        self, session: UnitOfWork, paid: PaidRequest, challenge: PaymentChallenge,
        pushed: PushedPayment,
    ) -> Payment:
        network = pushed.network.name
        fingerprint = _fingerprint(paid, network, pushed.tx_hash)
        existing = await self._existing(session, network, tx_hash=pushed.tx_hash)
        if existing is not None:
            return self._replay_or_refuse(existing, fingerprint, challenge)
        claimed = await binding.signer_claim(session, network, pushed.network.chain_id,
                                             pushed.tx_hash)
        if claimed is not None:
            raise _challenge_error(PaymentAlreadyUsed, challenge, claimed)
        client = self.chain.clients().get(network)
        if client is None or challenge.offer_for(network) is None:
            raise _challenge_error(PaymentInvalid, challenge,
                                   f"Payments on {network} are not accepted here.")
        try:
            verdict = await verify_pushed_transfer(
                client, pushed.network, pushed.tx_hash, pay_to=self.chain.pay_to,
                min_amount=paid.price_micros,
            )
        except (RpcUnavailable, RpcError) as exc:
            raise ServiceUnavailable(f"The {network} node did not answer: {exc}") from None
        if not verdict.ok and verdict.reason != "not_confirmed":
            raise _challenge_error(PaymentInvalid, challenge, verdict.message,
                                   details={"reason": verdict.reason})
        if verdict.authorizations and (
            await binding.authorization_owner(session, network, verdict.authorizations)
            or await binding.authorization_submitted(session, pushed.network.chain_id,
                                                     verdict.authorizations)
        ):
            raise _challenge_error(PaymentAlreadyUsed, challenge, binding.SPENDS_AUTHORIZATION)
        now = utcnow()
        payment = Payment(
            id=new_id("pay"),
            purpose=paid.purpose,
            resource=paid.resource,
            fingerprint=fingerprint,
            network=network,
            scheme="push",
            x402_version=None,
            payer=(verdict.payer or "").lower(),
            pay_to=self.chain.pay_to.lower(),
            # Still in the mempool the amount is unknown: the price is what the watcher will
            # hold the transfer to before it settles this payment.
            amount_micros=paid.price_micros if verdict.amount is None else verdict.amount,
            tx_hash=pushed.tx_hash,
            status="settled" if verdict.ok else "submitted",
            settled_at=now if verdict.ok else None,
        )
        recorded = await self._record(session, payment, challenge, nonce=None,
                                      tx_hash=pushed.tx_hash)
        if recorded is payment and verdict.ok:
            assert verdict.log_index is not None  # a verified transfer names its log
            # The watcher may have counted the transfer, as nobody's, before the client named
            # it: it must become this payment's, or a reorg would leave the pass standing.
            counted_as = await transfers.adopt(
                session, pushed.network.chain_id, pushed.tx_hash, verdict.log_index,
                Counted(PAYMENT, agent_id=payment.agent_id, reference=payment.id),
            )
            if counted_as not in (None, PAYMENT):
                raise _challenge_error(
                    PaymentAlreadyUsed, challenge,
                    f"This transfer was already counted as a {counted_as}.",
                )
            await emit(session, event_data(payment, "payment.settled", self._asset(network)))
        return recorded

    # -- settlement ----------------------------------------------------------------------

    async def request_settlement(self, session: UnitOfWork, payment: Payment) -> None:
        """Hand a freshly recorded EIP-3009 payment to the settlement signer (after commit).

        Pushed transfers need no signer: the chain watcher confirms them.
        """
        if payment.scheme != "exact" or payment.status != "pending" or not payment.authorization:
            return
        auth = payment.authorization
        await request_settlement(
            session,
            self.chain.networks[payment.network],
            TransferAuthorization(
                from_address=auth["from"], to_address=auth["to"], value=int(auth["value"]),
                valid_after=int(auth["validAfter"]), valid_before=int(auth["validBefore"]),
                nonce=auth["nonce"],
            ),
            auth["signature"],
            purpose_ref=payment.id,
        )

    async def get(self, session: UnitOfWork, payment_id: str) -> Payment:
        payment = await session.get(Payment, payment_id)
        if payment is None:
            raise NotFound("Payment not found.")
        log_context.bind(payment_id=payment.id)
        return payment

    async def wait_until_final(
        self, sessions: Any, payment_id: str, within: float
    ) -> Payment:
        """Wait (without holding a transaction) until the payment settles, fails, expires,
        or ``timeout`` passes; returns its latest state."""
        deadline = time.monotonic() + within
        with self.waiter.watch(payment_id) as watch:
            while True:
                async with sessions() as session:
                    payment = await self.get(session, payment_id)
                remaining = deadline - time.monotonic()
                if payment.status in FINAL or remaining <= 0:
                    return payment
                await watch.wait(remaining)

    def response_header(self, payment: Payment) -> tuple[str, str]:
        network = self.chain.networks[payment.network]
        version: Literal[1, 2] = 1 if payment.scheme == "push" or payment.x402_version == 1 else 2
        return settlement_response_header(
            version, success=payment.status == "settled", transaction=payment.tx_hash or "",
            network=network, payer=payment.payer or None,
        )

    # -- claim tokens --------------------------------------------------------------------

    @staticmethod
    def new_claim_token(payment: Payment, pepper: str) -> str:
        """A fresh token (only its hash is kept); each 202 answer hands out a new one."""
        token = "clt_" + secrets.token_urlsafe(24)
        payment.claim_token_hash = _token_hash(pepper, token)
        return token

    @staticmethod
    def check_claim_token(payment: Payment, pepper: str, token: str | None) -> bool:
        if not token or payment.claim_token_hash is None:
            return False
        return hmac.compare_digest(payment.claim_token_hash, _token_hash(pepper, token))

    async def close(self) -> None:
        await self.waiter.close()
        await self.chain.close()


def _token_hash(pepper: str, token: str) -> str:
    return hmac.new(pepper.encode(), token.encode(), hashlib.sha256).hexdigest()


# -- transitions shared by the API and the workers ---------------------------------------


async def mark_settled(
    session: UnitOfWork, payment_id: str, tx_hash: str, *, asset: str = "",
    payer: str | None = None, redis: Any = None, redis_prefix: str = "passgate",
) -> bool:
    """``pending/submitted -> settled`` exactly once; True when this call made the change.
    ``payer`` fills in who paid when it was not known at record time (a pending push)."""
    now = utcnow()
    values: dict[str, Any] = {"status": "settled", "tx_hash": tx_hash, "settled_at": now,
                              "updated_at": now}
    if payer is not None:
        values["payer"] = payer
    # From any unsettled state: money that moved on chain is honoured even when it arrives
    # after the payment was given up as expired or failed (a late payment is never dropped).
    result = await session.execute(
        update(Payment)
        .where(col(Payment.id) == payment_id, col(Payment.status) != "settled")
        .values(values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    payment = await session.get(Payment, payment_id, populate_existing=True)
    assert payment is not None
    await emit(session, event_data(payment, "payment.settled", asset), agent_id=payment.agent_id)
    session.after_commit(lambda: announce_settled(redis, redis_prefix, payment_id))
    # Counted once committed: a transition rolled back never happened.
    waited = SETTLEMENT_SECONDS.labels(payment.scheme, payment.network)
    seconds = max((now - payment.created_at).total_seconds(), 0.0)
    session.after_commit(lambda: waited.observe(seconds))
    return True


async def mark_failed(
    session: UnitOfWork, payment_id: str, reason: str, *, status: str = "failed",
    payer: str | None = None, redis: Any = None, redis_prefix: str = "passgate",
) -> bool:
    """``pending/submitted -> failed|expired`` exactly once (``payer`` as in mark_settled)."""
    values: dict[str, Any] = {"status": status, "failure_reason": reason[:500],
                              "updated_at": utcnow()}
    if payer is not None:
        values["payer"] = payer
    result = await session.execute(
        update(Payment)
        .where(col(Payment.id) == payment_id, col(Payment.status).in_(("pending", "submitted")))
        .values(values)
    )
    if not result.rowcount:  # type: ignore[attr-defined]
        return False
    payment = await session.get(Payment, payment_id, populate_existing=True)
    assert payment is not None
    event = f"payment.{status}"
    await emit(session, event_data(payment, event), agent_id=payment.agent_id)
    session.after_commit(lambda: announce_settled(redis, redis_prefix, payment_id))
    return True


async def due_to_expire(
    session: UnitOfWork, now: datetime, *, exact_grace_seconds: int = 600,
    push_after_seconds: int = 3600, limit: int = 200,
) -> list[str]:
    """Payments that can no longer settle: an EIP-3009 authorization past its ``validBefore``
    (plus a grace for a transaction already in flight), or a pushed transfer still unconfirmed
    after ``push_after_seconds`` (except those parked for an operator)."""
    exact_cutoff = now - timedelta(seconds=exact_grace_seconds)
    push_cutoff = now - timedelta(seconds=push_after_seconds)
    rows = await session.exec(
        select(Payment.id)
        .where(
            col(Payment.status).in_(("pending", "submitted")),
            ((col(Payment.scheme) == "exact") & (col(Payment.valid_before) <= exact_cutoff))
            | ((col(Payment.scheme) == "push") & (col(Payment.created_at) <= push_cutoff)),
            not_parked(PAYMENT_EXPIRY, Payment.id),
        )
        .limit(limit)
    )
    return list(rows.all())


async def expire(session: UnitOfWork, payment_id: str, *, redis: Any = None,
                 redis_prefix: str = "passgate") -> bool:
    """Give up on one payment that can no longer settle; emits ``payment.expired`` once."""
    return await mark_failed(session, payment_id, "not settled within its validity window",
                             status="expired", redis=redis, redis_prefix=redis_prefix)


async def expire_due(
    session: UnitOfWork, now: datetime, *, redis: Any = None, redis_prefix: str = "passgate",
) -> list[str]:
    """Expire every due payment in the caller's transaction (tools and tests; the scheduled
    job expires each in a transaction of its own)."""
    return [payment_id for payment_id in await due_to_expire(session, now)
            if await expire(session, payment_id, redis=redis, redis_prefix=redis_prefix)]
