"""The x402 ``upto`` scheme on EVM (Permit2): the offer, the client's payload, its verification.

The client signs a Permit2 ``PermitWitnessTransferFrom`` for at most the offered amount, with
the upto proxy as spender and a witness naming the recipient (pay-to) and the facilitator (the
settlement signer's address, sent in the offer's ``extra.facilitatorAddress``). Verification is
the official SDK's (``x402.mechanisms.evm.upto``: scheme, network, spender, recipient,
facilitator, deadline, amount, token, signature, Permit2 allowance, balance and a simulated
settle of the whole maximum), run in a worker thread since the SDK's signer is synchronous.
The server later settles the amount actually used: ``chain.permit2.encode_upto_settle``.

A retry carrying a payment identifier with a freshly signed authorization is never settled: it
only proves its payer (:meth:`UptoVerifier.verify_signer`, the same SDK cascade without the
allowance, balance and simulation, which the first settlement may well have used up, and a
strict signature check, so a smart wallet's signature is refused unless EIP-1271 accepts it).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address
from pydantic import ValidationError
from x402.mechanisms.evm.constants import ERR_PERMIT2_INVALID_SIGNATURE, SCHEME_UPTO
from x402.mechanisms.evm.signers import FacilitatorWeb3Signer
from x402.mechanisms.evm.types import UptoPermit2Payload, is_upto_permit2_payload
from x402.mechanisms.evm.upto import UptoEvmFacilitatorScheme
from x402.mechanisms.evm.upto.permit2_utils import (
    _verify_upto_permit2_signature,
    verify_upto_permit2,
)
from x402.mechanisms.evm.utils import get_evm_chain_id, hex_to_bytes
from x402.schemas import PaymentPayload, PaymentRequirements, VerifyResponse

from chain.networks import Network
from chain.permit2 import UptoSettle
from chain.x402.errors import PaymentHeaderError
from chain.x402.headers import PAYMENT_SIGNATURE, _base64_json, _canonical_hash

__all__ = [
    "SCHEME_UPTO",
    "UptoPayment",
    "UptoVerifier",
    "decode_upto_payment",
    "upto_requirements",
    "upto_settle",
]


def upto_requirements(
    network: Network, max_micros: int, pay_to: str, max_timeout_seconds: int, facilitator: str
) -> PaymentRequirements:
    """The ``upto`` offer on one network: at most ``max_micros`` of its USDC, through Permit2."""
    return PaymentRequirements(
        scheme=SCHEME_UPTO,
        network=network.caip2,
        asset=to_checksum_address(network.usdc_address),
        amount=str(max_micros),
        pay_to=to_checksum_address(pay_to),
        max_timeout_seconds=max_timeout_seconds,
        extra={
            "name": network.eip712_name,
            "version": network.eip712_version,
            "assetTransferMethod": "permit2",
            "facilitatorAddress": to_checksum_address(facilitator),
        },
    )


@dataclass(frozen=True, slots=True)
class UptoPayment:
    """A decoded ``upto`` payment (x402 v2 ``PAYMENT-SIGNATURE``)."""

    payload: PaymentPayload
    permit: UptoPermit2Payload
    payload_hash: str

    @property
    def network(self) -> str:
        return str(self.payload.accepted.network)

    @property
    def payer(self) -> str:
        return self.permit.permit2_authorization.from_address

    @property
    def nonce_hex(self) -> str:
        """The Permit2 nonce as 0x + 64 hex digits (how payments and submissions key it)."""
        return "0x" + int(self.permit.permit2_authorization.nonce).to_bytes(32, "big").hex()

    @property
    def max_amount(self) -> int:
        return int(self.permit.permit2_authorization.permitted.amount)

    @property
    def deadline(self) -> int:
        return int(self.permit.permit2_authorization.deadline)

    def settle_call(self, amount: int) -> UptoSettle:
        return upto_settle(self.permit, amount)


def upto_settle(permit: UptoPermit2Payload | Mapping[str, Any], amount: int) -> UptoSettle:
    """The proxy ``settle`` of a (stored: ``permit.to_dict()``) upto authorization for
    ``amount``."""
    if not isinstance(permit, UptoPermit2Payload):
        permit = UptoPermit2Payload.from_dict(dict(permit))
    auth = permit.permit2_authorization
    return UptoSettle(
        token=auth.permitted.token, max_amount=int(auth.permitted.amount),
        nonce=int(auth.nonce), deadline=int(auth.deadline), owner=auth.from_address,
        to=auth.witness.to, facilitator=auth.witness.facilitator,
        valid_after=int(auth.witness.valid_after), signature=permit.signature or "",
        amount=amount,
    )


def decode_upto_payment(headers: Mapping[str, str]) -> UptoPayment | None:
    """The ``upto`` payment in ``PAYMENT-SIGNATURE``; None when there is none or it is another
    scheme's (``chain.x402.decode_payment`` reads those). Raises ``PaymentHeaderError`` for an
    ``upto`` payload that is malformed."""
    value = next((v.strip() for k, v in headers.items()
                  if k.lower() == PAYMENT_SIGNATURE.lower() and v.strip()), None)
    if value is None:
        return None
    data = _base64_json(PAYMENT_SIGNATURE, value)
    accepted = data.get("accepted")
    if data.get("x402Version") != 2 or not isinstance(accepted, dict) \
            or accepted.get("scheme") != SCHEME_UPTO:
        return None
    try:
        payload = PaymentPayload.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        raise PaymentHeaderError(PAYMENT_SIGNATURE, f"{first['loc']}: {first['msg']}") from None
    if not is_upto_permit2_payload(payload.payload):
        raise PaymentHeaderError(PAYMENT_SIGNATURE, "an upto payload needs permit2Authorization "
                                                    "and signature")
    try:
        permit = UptoPermit2Payload.from_dict(payload.payload)
        int(permit.permit2_authorization.nonce)
        int(permit.permit2_authorization.deadline)
        int(permit.permit2_authorization.witness.valid_after)
        int(permit.permit2_authorization.permitted.amount)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise PaymentHeaderError(PAYMENT_SIGNATURE, "the permit2Authorization is malformed") \
            from None
    if not 0 <= int(permit.permit2_authorization.nonce) < 2**256:
        raise PaymentHeaderError(PAYMENT_SIGNATURE, "the Permit2 nonce is out of range")
    return UptoPayment(payload=payload, permit=permit, payload_hash=_canonical_hash(data))


class UptoVerifier:
    """The SDK's upto facilitator verification for one network, with the settlement signer's
    key as the facilitator (it only reads the chain here: the key never signs in this class)."""

    def __init__(self, rpc_url: str, signer_key: str) -> None:
        self._signer = FacilitatorWeb3Signer(private_key=signer_key, rpc_url=rpc_url)
        self._scheme = UptoEvmFacilitatorScheme(self._signer)

    @property
    def facilitator(self) -> str:
        return self._signer.address

    async def verify(self, payment: UptoPayment,
                     requirements: PaymentRequirements) -> VerifyResponse:
        return await asyncio.to_thread(self._verify, payment, requirements)

    def _verify(self, payment: UptoPayment, requirements: PaymentRequirements) -> VerifyResponse:
        return self._scheme.verify(payment.payload, requirements)

    async def verify_signer(self, payment: UptoPayment,
                            requirements: PaymentRequirements) -> VerifyResponse:
        """Whether ``payment`` is for ``requirements`` and signed by its payer, without what
        settling it would need (allowance, balance): for an authorization never settled."""
        return await asyncio.to_thread(self._verify_signer, payment, requirements)

    def _verify_signer(self, payment: UptoPayment,
                       requirements: PaymentRequirements) -> VerifyResponse:
        verdict = verify_upto_permit2(self._signer, payment.payload, requirements,
                                      simulate=False)
        if not verdict.is_valid:
            return verdict
        # The SDK leaves a contract wallet's refused signature to its simulation, skipped here.
        try:
            strict = _verify_upto_permit2_signature(
                self._signer, payment.payer, payment.permit.permit2_authorization,
                get_evm_chain_id(str(requirements.network)),
                hex_to_bytes(payment.permit.signature or "0x"),
            )
        except Exception:  # as the SDK's own signature step: unreadable proves nothing
            strict = False
        if not strict:
            return VerifyResponse(is_valid=False, invalid_reason=ERR_PERMIT2_INVALID_SIGNATURE,
                                  payer=payment.payer)
        return verdict
