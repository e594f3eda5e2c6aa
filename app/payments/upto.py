"""Accepting and settling an x402 ``upto`` payment: authorized for a maximum, charged the usage.

Accepting (:func:`accept_upto`) verifies the client's Permit2 authorization with the official
SDK (``chain.x402.upto``) against the offer for the paid request's maximum and records the
payment ``pending`` (``scheme="upto"``, ``authorized_micros`` = the maximum) under the same
unique (network, nonce) index as an EIP-3009 payment: the same authorization sent again finds
the same payment (same fingerprint) or is PAYMENT_ALREADY_USED, as for ``exact``. An upto
payment carrying an x402 ``payment-identifier`` is bound to it, its payer and its terms (the
scheme and the maximum among them) exactly as an ``exact`` one (``app.payments.identifiers``):
a retry with it and a freshly signed Permit2 authorization is checked only for its terms and
its payer's signature (the first settlement may have used the allowance or balance a full
verification wants), never recorded nor settled, and finds the first payment.

Settling (:func:`settle_upto`) happens once the usage is known: the payment's amount becomes
what was used (never more than authorized: refused otherwise) and the settlement signer is asked
to call the upto proxy for exactly that (``app.signer.upto``); nothing used settles the payment
at 0 with no transaction (the spec's zero settlement: the authorization simply expires).
"""

from __future__ import annotations

from x402.schemas import PaymentRequirements

from app.db.models.payments import Payment
from app.db.types import utcnow
from app.db.uow import UnitOfWork
from app.errors import Conflict, PaymentInvalid, ServiceUnavailable
from app.ids import new_id
from app.payments import identifiers, repository
from app.payments.acceptance import (
    PaidRequest,
    challenge_error,
    fingerprint_of,
    payment_deadline,
    record_once,
    replay_or_refuse,
)
from app.payments.networks import PaymentChain
from app.payments.transitions import mark_settled
from app.signer.upto import request_upto_settlement
from chain.errors import RpcError, RpcUnavailable
from chain.x402 import PaymentChallenge
from chain.x402.upto import UptoPayment, upto_settle


async def accept_upto(
    chain: PaymentChain, session: UnitOfWork, paid: PaidRequest, payment: UptoPayment
) -> Payment:
    """Verify an upto payment for ``paid`` (which must offer upto) and record it, or find the
    one it repeats. Raises PaymentInvalid / PaymentAlreadyUsed (with the 402's requirements),
    ServiceUnavailable. Flushes; the caller's unit of work commits."""
    assert paid.upto_max_micros is not None
    challenge = chain.challenge(paid.price_micros, paid.resource_url, paid.description,
                                paid.extensions, paid.upto_max_micros)
    offer = next((o for o in challenge.upto if o.network == payment.network), None)
    if offer is None:
        raise challenge_error(PaymentInvalid, challenge,
                               f"upto payments on {payment.network[:40]!r} are not accepted "
                               "here.", details={"reason": "invalid_network"})
    network = next(n for n in chain.networks.values() if n.caip2 == offer.network)
    nonce = payment.nonce_hex
    fingerprint = fingerprint_of(paid, network.name, nonce)
    identifier = identifiers.identifier_of(payment.payload.extensions)
    terms = None
    if identifier is not None:
        terms = identifiers.upto_terms_hash(offer, purpose=paid.purpose, terms=paid.terms,
                                            resource=paid.resource)
        bound = await _identified(chain, session, challenge, offer, payment, identifier, terms)
        if bound is not None:
            return bound
    existing = await repository.recorded(session, network.name, nonce=nonce)
    if existing is not None:
        if not identifiers.same_identifier(existing.payment_identifier, identifier):
            raise Conflict(identifiers.IDENTIFIER_IN_USE)
        return replay_or_refuse(existing, fingerprint, challenge,
                                 secret_result=paid.secret_result)
    try:
        verdict = await chain.upto_verifier(network.name).verify(payment, offer)
    except (RpcUnavailable, RpcError, OSError) as exc:
        raise ServiceUnavailable(f"The {network.name} node did not answer: "
                                 f"{type(exc).__name__}") from None
    if not verdict.is_valid:
        reason = verdict.invalid_reason or "invalid_upto_payment"
        raise challenge_error(PaymentInvalid, challenge,
                               f"The upto authorization was refused: {reason}.",
                               details={"reason": reason})
    auth = payment.permit.permit2_authorization
    record = Payment(
        id=new_id("pay"),
        purpose=paid.purpose,
        resource=paid.resource,
        fingerprint=fingerprint,
        network=network.name,
        scheme="upto",
        x402_version=2,
        payer=auth.from_address.lower(),
        pay_to=auth.witness.to.lower(),
        amount_micros=payment.max_amount,
        authorized_micros=payment.max_amount,
        auth_nonce=nonce,
        authorization=payment.permit.to_dict(),
        valid_before=payment_deadline(payment.deadline),
        payment_identifier=identifier,
        identifier_terms=terms,
    )
    return await record_once(chain, session, record, challenge, nonce=nonce, tx_hash=None,
                         secret_result=paid.secret_result)


async def _identified(
    chain: PaymentChain, session: UnitOfWork, challenge: PaymentChallenge,
    offer: PaymentRequirements, payment: UptoPayment, identifier: str, terms: str,
) -> Payment | None:
    """The payment ``identifier`` is bound to, if this request may have it (same payer, same
    terms); None when the identifier is new. A freshly signed authorization is verified as its
    payer's (signature and terms, nothing settling would need) and then forgotten."""
    bound = await repository.with_identifier(session, identifier)
    if bound is None:
        return None
    payer = bound.payer
    if not identifiers.same_authorization(bound, nonce=payment.nonce_hex,
                                          signature=payment.permit.signature or ""):
        network = next(n for n in chain.networks.values() if n.caip2 == offer.network)
        try:
            verdict = await chain.upto_verifier(network.name).verify_signer(payment, offer)
        except (RpcUnavailable, RpcError, OSError) as exc:
            raise ServiceUnavailable(f"The {network.name} node did not answer: "
                                     f"{type(exc).__name__}") from None
        if not verdict.is_valid:
            reason = verdict.invalid_reason or "invalid_upto_payment"
            raise challenge_error(PaymentInvalid, challenge,
                                   f"The upto authorization was refused: {reason}.",
                                   details={"reason": reason})
        payer = verdict.payer or ""
    return identifiers.bound_to_same(bound, payer=payer, terms=terms)


async def settle_upto(
    chain: PaymentChain, session: UnitOfWork, payment: Payment, amount_micros: int
) -> None:
    """Charge ``amount_micros`` of a pending upto payment: hand it to the signer, or settle it
    at 0 without a transaction. More than authorized is refused (ValueError)."""
    authorized = payment.authorized_micros or 0
    if payment.scheme != "upto" or not 0 <= amount_micros <= authorized:
        raise ValueError("an upto payment is charged at most what it authorized")
    payment.amount_micros = amount_micros
    payment.updated_at = utcnow()
    session.add(payment)
    await session.flush()
    if amount_micros == 0:
        await mark_settled(session, payment.id, "")
        return
    network = chain.networks[payment.network]
    settle = upto_settle(payment.authorization or {}, amount_micros)
    await request_upto_settlement(session, network, settle, purpose_ref=payment.id)
