"""x402 ``payment-identifier``: a client's idempotency key, bound to one payment.

Every 402 declares the extension (optional, with the x402 SDK's declaration). A v2 payment
that carries an identifier is recorded with it, under a unique index over all payments, and
with a hash of the terms it pays for (scheme, network, asset, amount, payTo, what is bought;
for ``upto`` the amount is the authorized maximum, so an ``exact`` and an ``upto`` payment never
share an identifier's result).
A later request with the same identifier:

* signed by the same payer for the same terms gets the first payment (its outcome is replayed
  by the route: the same pass key, the same settlement header), whether it repeats the first
  authorization or carries a freshly signed one. A fresh one is only checked for its terms and
  its signature (``chain.x402.signer_proof``; for ``upto`` the SDK's Permit2 verification
  without its allowance, balance and simulation checks: ``app.payments.upto``): it is never
  recorded as a payment, never handed to the settlement signer, never charged;
* under another payer or for other terms is 409 ``CONFLICT``, with one message for both, so a
  stranger holding the identifier learns nothing of the first purchase.

The identifier is unique across payers rather than per payer: the spec keys idempotency on the
identifier alone (same id, other payload: 409), and a client that retries from another wallet
is refused instead of silently buying twice. Two requests racing with the same identifier are
settled by the unique index: the loser's payment is rolled back and it gets the winner's.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any

from x402.extensions.payment_identifier import (
    PAYMENT_IDENTIFIER,
    declare_payment_identifier_extension,
    payment_identifier_schema,
    validate_payment_identifier,
)
from x402.schemas import PaymentRequirements

from app.db.models.payments import Payment
from app.errors import Conflict, ValidationFailed
from app.payments.networks import PaymentChain
from chain.x402 import PaymentChallenge, SignedPayment
from chain.x402.requirements import PaymentOffer
from chain.x402.signer_proof import verify_authorization_signer
from chain.x402.verify import PaymentVerification

__all__ = [
    "IDENTIFIER_IN_USE", "bound_to_same", "identifier_of", "payment_identifier_extension",
    "retry_signer", "same_authorization", "same_identifier", "terms_hash", "upto_terms_hash",
]

IDENTIFIER_IN_USE = (
    "This payment identifier already belongs to another payment (another payer or other "
    "terms). Use a new identifier for a new purchase."
)


def payment_identifier_extension() -> dict[str, Any]:
    """The 402's ``extensions`` entry: identifiers are accepted, not required."""
    return {PAYMENT_IDENTIFIER: declare_payment_identifier_extension(required=False)}


def identifier_of(extensions: Mapping[str, Any] | None) -> str | None:
    """The identifier a v2 payment's ``extensions`` carry, or None; a malformed one is
    VALIDATION_ERROR.

    The client's entry is validated with the SDK against passgate's own schema, not the
    schema the client echoed (which is the client's to choose). ``info.required`` is the
    server's flag, which the spec's own example payload leaves out: it may be missing.
    """
    entry = (extensions or {}).get(PAYMENT_IDENTIFIER)
    if entry is None:
        return None
    info = entry.get("info") if isinstance(entry, dict) else None
    if isinstance(info, dict):
        info = {"required": False, **info}
    result = validate_payment_identifier({"info": info, "schema": payment_identifier_schema})
    if not result.valid:
        raise ValidationFailed(
            f"The {PAYMENT_IDENTIFIER} extension is not valid: {'; '.join(result.errors)}",
            details={"extension": PAYMENT_IDENTIFIER, "errors": result.errors},
        )
    assert isinstance(info, dict)  # validated above
    identifier = info.get("id")
    return identifier if isinstance(identifier, str) else None


def _hashed(scheme: str, network: str, asset: str, amount: str, pay_to: str, *, purpose: str,
            terms: str, resource: str) -> str:
    raw = "|".join((scheme, network, asset.lower(), amount, pay_to.lower(), purpose, terms,
                    resource))
    return hashlib.sha256(raw.encode()).hexdigest()


def terms_hash(offer: PaymentOffer, *, purpose: str, terms: str, resource: str) -> str:
    """What an identifier is bound to besides its payer: one exact offer for one purchase."""
    return _hashed("exact", offer.network.caip2, offer.asset, str(offer.amount), offer.pay_to,
                   purpose=purpose, terms=terms, resource=resource)


def upto_terms_hash(offer: PaymentRequirements, *, purpose: str, terms: str,
                    resource: str) -> str:
    """The same for an ``upto`` offer: its amount is the maximum the payer authorizes."""
    return _hashed("upto", offer.network, offer.asset, offer.amount, offer.pay_to,
                   purpose=purpose, terms=terms, resource=resource)


def same_identifier(bound: str | None, presented: str | None) -> bool:
    """Whether a request presenting ``presented`` may find a payment bound to ``bound``: any
    request may find an unbound payment; a bound one only with its own identifier."""
    if bound is None:
        return True
    return presented is not None and hmac.compare_digest(bound.encode(), presented.encode())


def bound_to_same(bound: Payment, *, payer: str, terms: str) -> Payment:
    """``bound`` when ``payer`` and ``terms`` are its own, else 409 CONFLICT (one message for
    both cases: nothing of the first payment is revealed)."""
    same_payer = hmac.compare_digest(bound.payer.lower().encode(), payer.lower().encode())
    same_terms = hmac.compare_digest((bound.identifier_terms or "").encode(), terms.encode())
    if not (same_payer and same_terms):
        raise Conflict(IDENTIFIER_IN_USE, details={"extension": PAYMENT_IDENTIFIER})
    return bound


def same_authorization(bound: Payment, *, nonce: str, signature: str) -> bool:
    """Whether ``nonce`` and ``signature`` are ``bound``'s own authorization (sent again)."""
    stored = str((bound.authorization or {}).get("signature", ""))
    return nonce.lower() == (bound.auth_nonce or "") and hmac.compare_digest(
        stored.lower().encode(), signature.lower().encode())


async def retry_signer(
    chain: PaymentChain, challenge: PaymentChallenge, signed: SignedPayment, bound: Payment
) -> PaymentVerification | None:
    """None when ``signed`` is the bound payment's own authorization sent again; else the
    verdict on a freshly signed one (its terms and signature only: it is never settled).

    Raises ``chain.errors.RpcUnavailable``/``RpcError`` when the node did not answer.
    """
    if same_authorization(bound, nonce=signed.authorization.nonce, signature=signed.signature):
        return None
    return await verify_authorization_signer(signed, challenge, chain.clients())
