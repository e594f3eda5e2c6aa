"""Verifying an ``exact`` EIP-3009 payment against the challenge, locally on our own RPC.

Who checks what:

- here, before any RPC: the offer the payment is for (network), scheme, the terms a v2 client
  says it accepted (asset, payTo, amount), the authorization's recipient and exact amount, and
  the validity window with a margin for settlement (``min_validity_seconds``);
- the x402 SDK's exact-EVM facilitator verifier (``ExactEvmFacilitatorScheme.verify``), run in
  a worker thread against ``ChainReader``: the same field checks again, the EIP-712 signature
  (ecrecover for EOAs, EIP-1271 for contracts, ERC-6492 detection), the token is a contract,
  and an ``eth_call`` simulation of ``transferWithAuthorization`` (balance, nonce, window and
  signature as the token itself sees them);
- here again, after a failed simulation the SDK could not classify: ``authorizationState`` and
  ``balanceOf`` name the cause (nonce used / insufficient balance).

Smart wallets (EIP-1271 / ERC-6492):

- a payer with code (a deployed smart wallet, or an EIP-7702 delegated EOA) is accepted when
  the SDK's checks pass; because the SDK simulates 65-byte signatures with the ``v,r,s``
  overload while our settlement signer submits the ``bytes`` overload (which Circle's USDC
  checks with EIP-1271 for contracts), such payments are simulated once more with the exact
  settlement calldata;
- an ERC-6492 signature from a wallet that is not deployed yet is refused
  (``unsupported_wallet``): settling it would mean calling an arbitrary factory first. For a
  deployed wallet the 6492 wrapper is stripped and the inner signature is what gets settled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from decimal import Decimal
from typing import Literal

import msgspec
from x402.mechanisms.evm.constants import (
    ERR_ASSET_NOT_DEPLOYED_CONTRACT,
    ERR_AUTHORIZATION_VALUE_MISMATCH,
    ERR_EIP3009_NOT_SUPPORTED,
    ERR_FACTORY_NOT_ALLOWED,
    ERR_FAILED_TO_GET_NETWORK_CONFIG,
    ERR_FAILED_TO_VERIFY_SIGNATURE,
    ERR_INSUFFICIENT_BALANCE,
    ERR_INVALID_SIGNATURE,
    ERR_NETWORK_MISMATCH,
    ERR_NONCE_ALREADY_USED,
    ERR_RECIPIENT_MISMATCH,
    ERR_TOKEN_NAME_MISMATCH,
    ERR_TOKEN_VERSION_MISMATCH,
    ERR_UNDEPLOYED_SMART_WALLET,
    ERR_UNSUPPORTED_SCHEME,
    ERR_VALID_AFTER_FUTURE,
    ERR_VALID_BEFORE_EXPIRED,
)
from x402.mechanisms.evm.erc6492 import is_erc6492_signature, parse_erc6492_signature
from x402.mechanisms.evm.exact import ExactEvmFacilitatorScheme, ExactEvmSchemeConfig
from x402.mechanisms.evm.exact.eip3009_utils import parse_eip3009_transfer_error

from chain.client import ChainClient
from chain.usdc import TransferAuthorization
from chain.x402.headers import SignedPayment
from chain.x402.reader import ChainReader
from chain.x402.requirements import SCHEME_EXACT, PaymentChallenge, PaymentOffer

__all__ = [
    "DEFAULT_MIN_VALIDITY_SECONDS",
    "PaymentVerification",
    "VerifyReason",
    "check_terms",
    "outcome",
    "verify_signed_payment",
    "wrong_network",
]

VerifyReason = Literal[
    "unsupported_scheme",
    "wrong_network",
    "wrong_asset",
    "wrong_pay_to",
    "wrong_amount",
    "expired",
    "not_yet_valid",
    "invalid_signature",
    "unsupported_wallet",
    "insufficient_balance",
    "nonce_used",
    "simulation_failed",
]
Wallet = Literal["eoa", "smart_wallet"]

# An authorization must stay valid this long after verification: the settlement transaction
# has to be mined before `validBefore`, and our clock and the chain's may differ by seconds.
# (The SDK's own floor is 6 s.)
DEFAULT_MIN_VALIDITY_SECONDS = 10

_SDK_REASONS: dict[str, VerifyReason] = {
    ERR_UNSUPPORTED_SCHEME: "unsupported_scheme",
    ERR_NETWORK_MISMATCH: "wrong_network",
    ERR_FAILED_TO_GET_NETWORK_CONFIG: "wrong_network",
    ERR_ASSET_NOT_DEPLOYED_CONTRACT: "wrong_asset",
    ERR_EIP3009_NOT_SUPPORTED: "wrong_asset",
    ERR_RECIPIENT_MISMATCH: "wrong_pay_to",
    ERR_AUTHORIZATION_VALUE_MISMATCH: "wrong_amount",
    ERR_VALID_BEFORE_EXPIRED: "expired",
    ERR_VALID_AFTER_FUTURE: "not_yet_valid",
    ERR_INVALID_SIGNATURE: "invalid_signature",
    ERR_FAILED_TO_VERIFY_SIGNATURE: "invalid_signature",
    # The token's EIP-712 domain differs from the one signed over: the signature cannot match.
    ERR_TOKEN_NAME_MISMATCH: "invalid_signature",
    ERR_TOKEN_VERSION_MISMATCH: "invalid_signature",
    ERR_UNDEPLOYED_SMART_WALLET: "unsupported_wallet",
    ERR_FACTORY_NOT_ALLOWED: "unsupported_wallet",
    ERR_NONCE_ALREADY_USED: "nonce_used",
    ERR_INSUFFICIENT_BALANCE: "insufficient_balance",
}


class PaymentVerification(msgspec.Struct, frozen=True):
    """The outcome of verifying a signed payment.

    ``ok`` with ``reason`` None, or a ``reason`` code and a ``message`` for the client. The
    authorization fields are always filled (they were parsed from the header), so a failure
    can be recorded too. ``signature`` is what the settlement signer submits with
    ``authorization`` (an ERC-6492 wrapper removed); ``network`` is the registry name of the
    offer paid on, or the client's network string when it matched none.
    """

    ok: bool
    reason: VerifyReason | None
    message: str
    version: int
    network: str
    payer: str
    nonce: str
    amount: int
    valid_after: int
    valid_before: int
    authorization: TransferAuthorization
    signature: str
    wallet: Wallet | None = None
    sdk_reason: str | None = None  # the SDK's raw invalid_reason, for logs

    @property
    def already_used(self) -> bool:
        """The authorization was consumed on chain (the API answers PAYMENT_ALREADY_USED)."""
        return self.reason == "nonce_used"


async def verify_signed_payment(
    payment: SignedPayment,
    challenge: PaymentChallenge,
    clients: Mapping[str, ChainClient],
    *,
    settlement_address: str | None = None,
    min_validity_seconds: int = DEFAULT_MIN_VALIDITY_SECONDS,
) -> PaymentVerification:
    """Verify ``payment`` against what ``challenge`` offered; nothing is sent to the chain.

    ``clients`` maps network names to the ``ChainClient`` of that network (only the paid
    network's client is used). ``settlement_address`` is the ``from`` of the simulation.
    Returns a ``PaymentVerification``; raises ``chain.errors.RpcUnavailable``/``RpcError``
    when the node could not answer (the payment is then neither valid nor invalid: retry).
    """
    offer = challenge.offer_for(payment.network)
    if offer is None:
        return wrong_network(payment, challenge)
    failure = _check_terms(payment, offer, min_validity_seconds)
    if failure is not None:
        return failure

    client = clients.get(offer.network.name)
    if client is None:
        raise LookupError(f"no ChainClient configured for network {offer.network.name!r}")
    reader = ChainReader(client, asyncio.get_running_loop(), sender=settlement_address)
    verifier = ExactEvmFacilitatorScheme(
        reader,
        # No factory is trusted: counterfactual (ERC-6492) wallets are refused, see above.
        ExactEvmSchemeConfig(eip6492_allowed_factories=[]),
    )
    payload = payment.to_v2(offer.requirements)
    try:
        # The SDK is synchronous: run it off the event loop; its reads come back to the loop.
        response = await asyncio.to_thread(verifier.verify, payload, offer.requirements)
    except Exception as exc:
        if reader.failures:
            raise reader.failures[0] from exc
        raise
    if reader.failures:
        raise reader.failures[0]

    auth = payment.authorization
    wallet = _wallet(payment.signature, reader.code_of(auth.from_address))
    name = offer.network.name
    if not response.is_valid:
        sdk_reason = response.invalid_reason or "unknown"
        reason: VerifyReason = _SDK_REASONS.get(sdk_reason, "simulation_failed")
        message = _message(reason, payment, offer, detail=response.invalid_message)
        if reason == "simulation_failed":
            reason, message = await _diagnose(client, auth, message)
        elif reason == "insufficient_balance":
            message = _insufficient(await client.balance_of(auth.from_address), auth.value)
        return _outcome(payment, name, reason, message, wallet=wallet, sdk_reason=sdk_reason)

    signature = _settlement_signature(payment.signature)
    if wallet == "smart_wallet":
        simulated = await client.simulate_transfer_with_authorization(
            auth, signature, sender=settlement_address
        )
        if not simulated.ok:
            sdk_reason = parse_eip3009_transfer_error(RuntimeError(simulated.reason or ""))
            reason = _SDK_REASONS.get(sdk_reason, "simulation_failed")
            message = _message(reason, payment, offer, detail=simulated.reason)
            return _outcome(payment, name, reason, message, wallet=wallet, sdk_reason=sdk_reason)
    return _outcome(payment, name, None, "Payment verified.", wallet=wallet, signature=signature)


# ---------------------------------------------------------------------- checks before RPC


def wrong_network(payment: SignedPayment, challenge: PaymentChallenge) -> PaymentVerification:
    """The outcome for a payment on a network ``challenge`` does not offer."""
    offered = ", ".join(f"{o.network.caip2} ({o.network.name})" for o in challenge.offers)
    return _outcome(
        payment,
        payment.network,
        "wrong_network",
        f"This payment is for network {payment.network!r}; accepted here: {offered}.",
    )


def _check_terms(
    payment: SignedPayment, offer: PaymentOffer, min_validity_seconds: int
) -> PaymentVerification | None:
    """The checks that need no chain: the first failing one, or None."""
    reason = _first_term_failure(payment, offer, min_validity_seconds)
    if reason is None:
        return None
    detail = f"needs at least {min_validity_seconds}s left" if reason == "expired" else None
    message = _message(reason, payment, offer, detail=detail)
    return _outcome(payment, offer.network.name, reason, message)


def _first_term_failure(
    payment: SignedPayment, offer: PaymentOffer, min_validity_seconds: int
) -> VerifyReason | None:
    auth = payment.authorization
    accepted = payment.accepted  # v2 only: the terms the client says it signed for
    if payment.scheme != SCHEME_EXACT:
        return "unsupported_scheme"
    if accepted is not None and accepted.asset.lower() != offer.asset.lower():
        return "wrong_asset"
    pay_to = offer.pay_to.lower()
    if auth.to_address.lower() != pay_to or (accepted and accepted.pay_to.lower() != pay_to):
        return "wrong_pay_to"
    if auth.value != offer.amount or (accepted and _int_or_none(accepted.amount) != offer.amount):
        return "wrong_amount"
    now = int(time.time())
    if auth.valid_before < now + min_validity_seconds:
        return "expired"
    # The token requires block.timestamp > validAfter; standard clients backdate it.
    if auth.valid_after > now:
        return "not_yet_valid"
    return None


def _int_or_none(text: str) -> int | None:
    try:
        return int(text)
    except ValueError:
        return None


# ---------------------------------------------------------------------- after the SDK


async def _diagnose(
    client: ChainClient, auth: TransferAuthorization, fallback: str
) -> tuple[VerifyReason, str]:
    """Name the cause of a failed simulation the SDK could not classify."""
    used, balance = await asyncio.gather(
        client.authorization_state(auth.from_address, auth.nonce),
        client.balance_of(auth.from_address),
    )
    if used:
        return "nonce_used", _NONCE_USED
    if balance < auth.value:
        return "insufficient_balance", _insufficient(balance, auth.value)
    return "simulation_failed", fallback


def _wallet(signature: str, code: bytes | None) -> Wallet:
    # Code at the payer (a contract or an EIP-7702 delegation), an ERC-6492 wrapper or a
    # signature that is not plain 65-byte ECDSA all mean a smart wallet.
    raw = bytes.fromhex(signature.removeprefix("0x"))
    if code or len(raw) != 65 or is_erc6492_signature(raw):
        return "smart_wallet"
    return "eoa"


def _settlement_signature(signature: str) -> str:
    raw = bytes.fromhex(signature.removeprefix("0x"))
    if is_erc6492_signature(raw):
        # Only reached for deployed wallets (undeployed ones are refused): the token wants the
        # wallet's own signature, not the deployment wrapper.
        return "0x" + parse_erc6492_signature(raw).inner_signature.hex()
    return signature


def _outcome(
    payment: SignedPayment,
    network: str,
    reason: VerifyReason | None,
    message: str,
    *,
    wallet: Wallet | None = None,
    sdk_reason: str | None = None,
    signature: str | None = None,
) -> PaymentVerification:
    auth = payment.authorization
    return PaymentVerification(
        ok=reason is None,
        reason=reason,
        message=message,
        version=payment.version,
        network=network,
        payer=auth.from_address,
        nonce=auth.nonce,
        amount=auth.value,
        valid_after=auth.valid_after,
        valid_before=auth.valid_before,
        authorization=auth,
        signature=signature or payment.signature,
        wallet=wallet,
        sdk_reason=sdk_reason,
    )


# ---------------------------------------------------------------------- messages

_NONCE_USED = "This authorization was already used on chain; sign a new one with a fresh nonce."


def _usdc(micros: int) -> str:
    return f"{Decimal(micros) / Decimal(10**6):f} USDC"


def _insufficient(balance: int, needed: int) -> str:
    return f"The payer holds {_usdc(balance)}; the payment needs {_usdc(needed)}."


def _message(
    reason: VerifyReason, payment: SignedPayment, offer: PaymentOffer, *, detail: str | None = None
) -> str:
    auth = payment.authorization
    accepted = payment.accepted
    match reason:
        case "unsupported_scheme":
            text = f"Scheme {payment.scheme!r} is not accepted; pay with scheme 'exact'."
        case "wrong_network":
            text = f"This payment is not for {offer.network.caip2}."
        case "wrong_asset":
            asset = accepted.asset if accepted is not None else "?"
            text = f"Pay in USDC {offer.asset} on {offer.network.caip2}, not in {asset}."
        case "wrong_pay_to":
            to = (
                auth.to_address
                if auth.to_address.lower() != offer.pay_to.lower()
                else (accepted.pay_to if accepted is not None else auth.to_address)
            )
            text = f"The payment goes to {to}; this resource is paid to {offer.pay_to}."
        case "wrong_amount":
            text = (
                f"The authorization is for {_usdc(auth.value)}; the price is exactly "
                f"{_usdc(offer.amount)} ({offer.amount} base units)."
            )
        case "expired":
            text = f"The authorization expires at {auth.valid_before} (unix time): too soon."
        case "not_yet_valid":
            text = f"The authorization is only valid after {auth.valid_after} (unix time)."
        case "invalid_signature":
            text = "The signature does not match the authorization and the payer."
        case "unsupported_wallet":
            text = (
                "Signatures of smart wallets that are not deployed yet (ERC-6492) are not "
                "accepted; deploy the wallet first or pay from an EOA."
            )
        case "insufficient_balance":
            text = f"The payer does not hold {_usdc(auth.value)}."
        case "nonce_used":
            text = _NONCE_USED
        case "simulation_failed":
            text = "The token would reject this transfer."
    return f"{text} ({detail})" if detail else text


# Shared with ``chain.x402.signer_proof`` (a retry's fresh authorization, never settled).
check_terms = _check_terms
outcome = _outcome
