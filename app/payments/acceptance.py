"""Accepting an x402 payment: decode it, verify it, and record it exactly once.

A payment is recorded before anything is settled, under unique (network, nonce) and (network,
tx hash) indexes: a second request carrying the same payment either is the same purchase
(same fingerprint: it gets the same outcome) or is refused with PAYMENT_ALREADY_USED. Which
transaction a pushed payment may name is ``app.payments.binding``. A v2 payment carrying an
x402 ``payment-identifier`` is bound to it, and a retry with it (even freshly signed) finds the
first payment: ``app.payments.identifiers``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.exc import IntegrityError

from app.db import locks
from app.db.models.payments import Payment
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import (
    Conflict,
    PaymentAlreadyUsed,
    PaymentInvalid,
    PaymentRequired,
    ServiceUnavailable,
)
from app.events.service import emit
from app.ids import new_id
from app.logs import context as log_context
from app.payments import binding, identifiers, repository
from app.payments.networks import PaymentChain
from app.payments.repository import PAYMENT
from app.payments.transitions import event_data
from app.transfers import service as transfers
from app.transfers.counting import Counted
from chain.errors import RpcError, RpcUnavailable
from chain.x402 import (
    PaymentChallenge,
    PaymentHeaderError,
    PushedPayment,
    SignedPayment,
    decode_payment,
    verify_pushed_transfer,
    verify_signed_payment,
)
from chain.x402.headers import PAYMENT_REQUIRED

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
    # The x402 v2 extensions its 402 declares (``chain.x402.extensions``), by key.
    extensions: Mapping[str, Any] = field(default_factory=dict)
    # Priced by usage: the 402 also offers ``upto`` for at most this (``app.payments.upto``).
    upto_max_micros: int | None = None
    # What it sells is a secret (a pass key): see ``replay_or_refuse``.
    secret_result: bool = False


def fingerprint_of(paid: PaidRequest, network: str, identity: str) -> str:
    raw = f"{paid.purpose}|{paid.terms}|{paid.price_micros}|{network}|{identity.lower()}"
    return hashlib.sha256(raw.encode()).hexdigest()


def payment_deadline(valid_before: int) -> datetime:
    if valid_before >= _NEVER.timestamp():
        return _NEVER
    return datetime.fromtimestamp(valid_before, UTC)


def challenge_error(
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


def _asset(chain: PaymentChain, network: str) -> str:
    found = chain.networks.get(network)
    return found.usdc_address if found else ""


async def accept(
    chain: PaymentChain, session: UnitOfWork, paid: PaidRequest, headers: Mapping[str, str], *,
    signed_only: bool = False,
) -> Payment:
    """Verify the payment in ``headers`` and record it (or find the one it repeats).

    ``signed_only`` refuses a pushed transfer before anything is looked up or recorded.
    Without a settlement signer a signed payment is refused (503) before it is verified or
    recorded, and a route taking only signed payments answers 503 rather than a 402 it
    could not honour; a pushed transfer needs no signer (the chain watcher confirms it).
    Raises PaymentRequired (no payment), PaymentInvalid, PaymentAlreadyUsed,
    ServiceUnavailable. Flushes; the caller's unit of work commits.
    """
    challenge = chain.challenge(paid.price_micros, paid.resource_url, paid.description,
                                paid.extensions, paid.upto_max_micros)
    try:
        decoded = decode_payment(headers, chain.networks.values())
    except PaymentHeaderError as exc:
        raise challenge_error(PaymentInvalid, challenge, str(exc)) from None
    if decoded is None:
        if signed_only and not chain.can_settle_signed:
            raise _no_signer()
        raise challenge_error(PaymentRequired, challenge,
                               f"Payment required: {paid.description}.")
    if isinstance(decoded, PushedPayment):
        if signed_only:
            raise challenge_error(
                PaymentInvalid, challenge,
                f"{paid.description.capitalize()} takes a signed authorization "
                "(PAYMENT-SIGNATURE or X-PAYMENT): a pushed transfer could not be handed "
                "back if the call failed.",
            )
        payment = await _accept_pushed(chain, session, paid, challenge, decoded)
    else:
        payment = await _accept_signed(chain, session, paid, challenge, decoded)
    log_context.bind(payment_id=payment.id)
    return payment

# Why a payment's secret result is never handed to a request that repeats it without its
# payment identifier: an authorization is public once passgate's signer broadcasts it (its
# calldata holds every field and the signature), and a pushed hash is public by nature, so a
# repeated header proves nothing about who sends it.
_REPEAT_REFUSED = (
    "This payment was already presented, and what it bought went to that request: a pass key "
    "is shown again only to a retry that carries the same payment identifier (x402 "
    "payment-identifier extension). The paying wallet can still use its pass by signing in "
    "(SIGN-IN-WITH-X)."
)


def replay_or_refuse(
    existing: Payment, fingerprint: str, challenge: PaymentChallenge, *, secret_result: bool
) -> Payment:
    """The payment a request repeats, if it may have its result.

    A repeat of the same purchase gets the same outcome, except where the outcome is a secret
    (a pass key, or a claim token for it) and the repeat carries no payment identifier: anyone
    can rebuild such a request from the chain (``_REPEAT_REFUSED``)."""
    if existing.fingerprint != fingerprint:
        raise challenge_error(
            PaymentAlreadyUsed, challenge,
            "This payment was already used for another purchase.",
            details={"paymentId": existing.id},
        )
    if secret_result and existing.payment_identifier is None:
        raise challenge_error(PaymentAlreadyUsed, challenge, _REPEAT_REFUSED,
                               details={"paymentId": existing.id})
    return existing

async def record_once(
    chain: PaymentChain, session: UnitOfWork, payment: Payment, challenge: PaymentChallenge, *,
    nonce: str | None, tx_hash: str | None, secret_result: bool,
) -> Payment:
    session.add(payment)
    try:
        await session.flush()
    except IntegrityError:
        # Another request (maybe in another process) recorded this payment first.
        await session.rollback()
        existing = await repository.recorded(session, payment.network, nonce=nonce,
                                             tx_hash=tx_hash)
        if existing is None and payment.payment_identifier is not None:
            # A retry with the same payment identifier and its own authorization won.
            bound = await repository.with_identifier(session, payment.payment_identifier)
            if bound is not None:
                return identifiers.bound_to_same(bound, payer=payment.payer,
                                                 terms=payment.identifier_terms or "")
        if existing is None:
            raise
        return replay_or_refuse(existing, payment.fingerprint, challenge,
                                 secret_result=secret_result)
    await emit(session, event_data(payment, "payment.pending", _asset(chain, payment.network)),
               agent_id=payment.agent_id)
    return payment

async def _accept_signed(
    chain: PaymentChain, session: UnitOfWork, paid: PaidRequest, challenge: PaymentChallenge,
    signed: SignedPayment,
) -> Payment:
    offer = challenge.offer_for(signed.network)
    network = offer.network.name if offer else signed.network
    nonce = signed.authorization.nonce.lower()
    fingerprint = fingerprint_of(paid, network, nonce)
    identifier = identifiers.identifier_of(signed.extensions)
    terms = None
    if identifier is not None and offer is not None:
        terms = identifiers.terms_hash(offer, purpose=paid.purpose, terms=paid.terms,
                                       resource=paid.resource)
        bound = await _identified(chain, session, challenge, signed, identifier, terms)
        if bound is not None:
            return bound
    existing = await repository.recorded(session, network, nonce=nonce)
    if existing is not None:
        if not identifiers.same_identifier(existing.payment_identifier, identifier):
            # A payment bound to an identifier is only ever found again with it: its
            # authorization is public once broadcast, the identifier is not.
            raise Conflict(identifiers.IDENTIFIER_IN_USE)
        return replay_or_refuse(existing, fingerprint, challenge,
                                 secret_result=paid.secret_result)
    if not chain.can_settle_signed:
        raise _no_signer()
    if signed.authorization.valid_before > MAX_VALID_BEFORE:
        raise challenge_error(
            PaymentInvalid, challenge,
            f"validBefore must be at most {MAX_VALID_BEFORE} (unix seconds).",
            details={"reason": "valid_before_too_late"},
        )
    try:
        verdict = await verify_signed_payment(signed, challenge, chain.clients())
    except (RpcUnavailable, RpcError) as exc:
        raise ServiceUnavailable(f"The {network} node did not answer: {exc}") from None
    if not verdict.ok:
        error = PaymentAlreadyUsed if verdict.already_used else PaymentInvalid
        raise challenge_error(error, challenge, verdict.message,
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
        valid_before=payment_deadline(verdict.valid_before),
        payment_identifier=identifier if terms is not None else None,
        identifier_terms=terms,
    )
    return await record_once(chain, session, payment, challenge, nonce=nonce, tx_hash=None,
                         secret_result=paid.secret_result)


async def _identified(
    chain: PaymentChain, session: UnitOfWork, challenge: PaymentChallenge, signed: SignedPayment,
    identifier: str, terms: str,
) -> Payment | None:
    """The payment ``identifier`` is bound to, if this request may have it (same payer, same
    terms: see ``app.payments.identifiers``); None when the identifier is new."""
    bound = await repository.with_identifier(session, identifier)
    if bound is None:
        return None
    try:
        verdict = await identifiers.retry_signer(chain, challenge, signed, bound)
    except (RpcUnavailable, RpcError) as exc:
        raise ServiceUnavailable(f"The {bound.network} node did not answer: {exc}") from None
    if verdict is not None and not verdict.ok:
        raise challenge_error(PaymentInvalid, challenge, verdict.message,
                               details={"reason": verdict.reason})
    payer = bound.payer if verdict is None else verdict.payer
    return identifiers.bound_to_same(bound, payer=payer, terms=terms)

async def _accept_pushed(
    chain: PaymentChain, session: UnitOfWork, paid: PaidRequest, challenge: PaymentChallenge,
    pushed: PushedPayment,
) -> Payment:
    network = pushed.network.name
    fingerprint = fingerprint_of(paid, network, pushed.tx_hash)
    existing = await repository.recorded(session, network, tx_hash=pushed.tx_hash)
    if existing is not None:
        return replay_or_refuse(existing, fingerprint, challenge,
                                 secret_result=paid.secret_result)
    claimed = await binding.signer_claim(session, network, pushed.network.chain_id,
                                         pushed.tx_hash)
    if claimed is not None:
        raise challenge_error(PaymentAlreadyUsed, challenge, claimed)
    client = chain.clients().get(network)
    if client is None or challenge.offer_for(network) is None:
        raise challenge_error(PaymentInvalid, challenge,
                               f"Payments on {network} are not accepted here.")
    try:
        verdict = await verify_pushed_transfer(
            client, pushed.network, pushed.tx_hash, pay_to=chain.pay_to,
            min_amount=paid.price_micros,
        )
    except (RpcUnavailable, RpcError) as exc:
        raise ServiceUnavailable(f"The {network} node did not answer: {exc}") from None
    if not verdict.ok and verdict.reason != "not_confirmed":
        raise challenge_error(PaymentInvalid, challenge, verdict.message,
                               details={"reason": verdict.reason})
    if verdict.authorizations and (
        await binding.authorization_owner(session, network, verdict.authorizations)
        or await binding.authorization_submitted(session, pushed.network.chain_id,
                                                 verdict.authorizations)
    ):
        raise challenge_error(PaymentAlreadyUsed, challenge, binding.SPENDS_AUTHORIZATION)
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
        pay_to=chain.pay_to.lower(),
        # Still in the mempool the amount is unknown: the price is what the watcher will
        # hold the transfer to before it settles this payment.
        amount_micros=paid.price_micros if verdict.amount is None else verdict.amount,
        tx_hash=pushed.tx_hash,
        status="settled" if verdict.ok else "submitted",
        settled_at=now if verdict.ok else None,
    )
    # Ordered with the watcher's counting of this network's transfers: the transfer is then
    # either counted already (adopted below) or counted later as this payment's.
    await locks.pushed_transfers(session, pushed.network.chain_id, counting=False)
    recorded = await record_once(chain, session, payment, challenge, nonce=None,
                             tx_hash=pushed.tx_hash, secret_result=paid.secret_result)
    if recorded is payment and verdict.ok:
        assert verdict.log_index is not None  # a verified transfer names its log
        # The watcher may have counted the transfer, as nobody's, before the client named
        # it: it must become this payment's, or a reorg would leave the pass standing.
        counted_as = await transfers.adopt(
            session, pushed.network.chain_id, pushed.tx_hash, verdict.log_index,
            Counted(PAYMENT, agent_id=payment.agent_id, reference=payment.id),
        )
        if counted_as not in (None, PAYMENT):
            raise challenge_error(
                PaymentAlreadyUsed, challenge,
                f"This transfer already counts for something else ({counted_as}).",
            )
        await emit(session, event_data(payment, "payment.settled", _asset(chain, network)))
    return recorded
