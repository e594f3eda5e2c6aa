"""Who signed an authorization that will never be settled: a retry's proof of its payer.

A client that lost the answer to a paid request often signs a fresh authorization (a new nonce)
and retries with the same x402 ``payment-identifier``. That authorization only proves the payer
is the wallet that paid the first time; passgate never settles it. So it is checked for its
terms and its signature, not for what settling it would need: the payer may well have spent its
balance on the first payment, and the fresh nonce is never consumed.

The signature is checked by the x402 SDK's own classifier (``classify_eip3009_signature``: ecrecover
for EOAs, EIP-1271 for deployed contracts and EIP-7702 delegated EOAs), run in a worker thread
against ``ChainReader`` like the full verifier. A signature the SDK cannot call valid here (a
counterfactual ERC-6492 wallet, an EIP-1271 refusal) proves nothing and is refused.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from x402.mechanisms.evm.exact.eip3009_utils import classify_eip3009_signature
from x402.mechanisms.evm.types import ExactEIP3009Authorization
from x402.mechanisms.evm.utils import hex_to_bytes

from chain.client import ChainClient
from chain.x402.headers import SignedPayment
from chain.x402.reader import ChainReader
from chain.x402.requirements import PaymentChallenge
from chain.x402.verify import PaymentVerification, check_terms, outcome, wrong_network

__all__ = ["verify_authorization_signer"]


async def verify_authorization_signer(
    payment: SignedPayment,
    challenge: PaymentChallenge,
    clients: Mapping[str, ChainClient],
) -> PaymentVerification:
    """Check ``payment``'s terms against ``challenge`` and that its payer signed it.

    Nothing is simulated: the result's ``ok`` says the authorization is for these terms, still
    inside its validity window, and signed by ``payer``; it says nothing about whether it could
    be settled. Raises ``chain.errors.RpcUnavailable``/``RpcError`` when the node could not
    answer (needed for the payer's code).
    """
    offer = challenge.offer_for(payment.network)
    if offer is None:
        return wrong_network(payment, challenge)
    failure = check_terms(payment, offer, min_validity_seconds=0)
    if failure is not None:
        return failure
    client = clients.get(offer.network.name)
    if client is None:
        raise LookupError(f"no ChainClient configured for network {offer.network.name!r}")
    auth = payment.authorization
    extra = offer.requirements.extra or {}
    sdk_authorization = ExactEIP3009Authorization(
        from_address=auth.from_address, to=auth.to_address, value=str(auth.value),
        valid_after=str(auth.valid_after), valid_before=str(auth.valid_before), nonce=auth.nonce,
    )
    reader = ChainReader(client, asyncio.get_running_loop())
    try:
        classification = await asyncio.to_thread(
            classify_eip3009_signature, reader, sdk_authorization,
            hex_to_bytes(payment.signature), offer.network.chain_id, offer.asset,
            str(extra.get("name", "")), str(extra.get("version", "")),
        )
    except Exception as exc:
        if reader.failures:
            raise reader.failures[0] from exc
        return outcome(payment, offer.network.name, "invalid_signature",
                       "The signature does not match the authorization and the payer.")
    if reader.failures:
        raise reader.failures[0]
    if not classification.valid:
        return outcome(payment, offer.network.name, "invalid_signature",
                       "The signature does not match the authorization and the payer.")
    return outcome(payment, offer.network.name, None, "Payer verified.")
