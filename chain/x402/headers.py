"""Reading the payment a request carries in its headers.

Three ways to pay arrive in headers (SPEC "x402 payments"):

- ``PAYMENT-SIGNATURE``: x402 v2, base64 JSON ``PaymentPayload``;
- ``X-PAYMENT``: x402 v1, base64 JSON ``{x402Version: 1, scheme, network, payload}``;
- ``X-Payment: 0x<64 hex>`` + ``X-Payment-Chain``: a USDC transfer the client already sent.

HTTP header names are case-insensitive, so ``X-PAYMENT`` and ``X-Payment`` are one header: a
``0x`` + 64 hex value is a transaction hash, anything else must be base64.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import msgspec
from eth_utils.address import is_address, to_checksum_address
from pydantic import ValidationError
from x402.schemas import (
    PaymentPayload,
    PaymentPayloadV1,
    PaymentRequirements,
    ResourceInfo,
)

from chain.networks import NETWORK_NAMES, Network
from chain.usdc import TransferAuthorization
from chain.x402.errors import PaymentHeaderError

__all__ = [
    "PAYMENT_REQUIRED",
    "PAYMENT_RESPONSE",
    "PAYMENT_SIGNATURE",
    "X_PAYMENT",
    "X_PAYMENT_CHAIN",
    "X_PAYMENT_RESPONSE",
    "PushedPayment",
    "SignedPayment",
    "decode_payment",
]

PAYMENT_REQUIRED = "PAYMENT-REQUIRED"
PAYMENT_SIGNATURE = "PAYMENT-SIGNATURE"
PAYMENT_RESPONSE = "PAYMENT-RESPONSE"
X_PAYMENT = "X-PAYMENT"
X_PAYMENT_RESPONSE = "X-PAYMENT-RESPONSE"
X_PAYMENT_CHAIN = "X-Payment-Chain"

# A payload is a few hundred bytes (a smart-wallet signature a few KB); anything far larger is
# not a payment and is refused before any decoding work.
MAX_HEADER_CHARS = 16_384
MAX_SIGNATURE_BYTES = 4_096
# A payload holds a handful of objects. A JSON decoder recurses once per nesting level, and
# the brackets bound the nesting: far more of them is not a payment, and is refused before
# decoding rather than left to the interpreter's recursion limit.
MAX_PAYLOAD_BRACKETS = 256
_UINT256_MAX = 2**256 - 1

_TX_HASH = re.compile(r"0x[0-9a-fA-F]{64}")
_HEX = re.compile(r"0x(?:[0-9a-fA-F]{2})+")
_NONCE = re.compile(r"0x[0-9a-fA-F]{64}")
_DIGITS = re.compile(r"[0-9]{1,78}")


@dataclass(frozen=True, slots=True)
class SignedPayment:
    """An EIP-3009 authorization sent with ``PAYMENT-SIGNATURE`` (v2) or ``X-PAYMENT`` (v1).

    Well-formed, not verified: ``verify_signed_payment`` checks it against the challenge.
    ``network`` is as the client sent it (CAIP-2 for v2, a v1 name for v1); ``accepted`` and
    ``resource`` are the v2 client's copy of the terms it paid for (None for v1).
    """

    version: Literal[1, 2]
    scheme: str
    network: str
    authorization: TransferAuthorization
    signature: str
    accepted: PaymentRequirements | None = None
    resource: ResourceInfo | None = None
    # What a v2 client echoed or added to the declared extensions (None for v1).
    extensions: dict[str, Any] | None = None
    # sha256 of the decoded payload as canonical JSON: the same payment sent again, byte for
    # byte in meaning, has the same hash (a re-signed authorization does not).
    payload_hash: str = ""

    @property
    def header(self) -> str:
        return PAYMENT_SIGNATURE if self.version == 2 else X_PAYMENT

    @property
    def response_header(self) -> str:
        """The header the settlement result goes back in: same protocol version as the payment."""
        return PAYMENT_RESPONSE if self.version == 2 else X_PAYMENT_RESPONSE

    def inner_payload(self) -> dict[str, Any]:
        """The scheme payload in the shape the SDK's exact-EVM code reads (normalised values)."""
        auth = self.authorization
        return {
            "authorization": {
                "from": auth.from_address,
                "to": auth.to_address,
                "value": str(auth.value),
                "validAfter": str(auth.valid_after),
                "validBefore": str(auth.valid_before),
                "nonce": auth.nonce,
            },
            "signature": self.signature,
        }

    def to_v2(self, requirements: PaymentRequirements) -> PaymentPayload:
        """This payment as a v2 ``PaymentPayload`` for the SDK's verifier.

        A v1 payload names no terms, so it is taken as accepting ``requirements`` (its
        authorization is still checked against them); a v2 payload keeps its own ``accepted``.
        """
        return PaymentPayload(
            x402_version=2,
            payload=self.inner_payload(),
            accepted=(self.accepted or requirements).model_copy(deep=True),
            resource=self.resource,
        )


@dataclass(frozen=True, slots=True)
class PushedPayment:
    """A USDC transfer the client says it sent: its hash and the network it went to."""

    tx_hash: str  # lowercase 0x hex
    network: Network

    @property
    def header(self) -> str:
        return X_PAYMENT


# ---------------------------------------------------------------------- decoding


class _WireAuthorization(msgspec.Struct):
    # Numbers are strings on the wire; ints are tolerated (some clients send them).
    from_address: str = msgspec.field(name="from")
    to: str
    value: str | int
    valid_after: str | int = msgspec.field(name="validAfter")
    valid_before: str | int = msgspec.field(name="validBefore")
    nonce: str


class _WireExactPayload(msgspec.Struct):
    authorization: _WireAuthorization
    signature: str


def decode_payment(
    headers: Mapping[str, str], networks: Iterable[Network]
) -> SignedPayment | PushedPayment | None:
    """Find and parse the payment in request headers; None when the request carries none.

    ``headers`` may use any case for names (a Litestar ``Headers`` works as is).
    ``networks`` are the configured ones: ``X-Payment-Chain`` must name one of them.
    Raises ``PaymentHeaderError`` for anything malformed, including two payments at once.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    signature_value = _present(lowered.get(PAYMENT_SIGNATURE.lower()))
    x_payment_value = _present(lowered.get(X_PAYMENT.lower()))
    chain_value = _present(lowered.get(X_PAYMENT_CHAIN.lower()))

    if signature_value is not None and x_payment_value is not None:
        raise PaymentHeaderError(
            PAYMENT_SIGNATURE, f"send one payment: {PAYMENT_SIGNATURE} or {X_PAYMENT}, not both"
        )
    if signature_value is not None:
        if chain_value is not None:
            raise PaymentHeaderError(
                X_PAYMENT_CHAIN, f"{X_PAYMENT_CHAIN} only accompanies a transaction hash"
            )
        return _decode_signed(PAYMENT_SIGNATURE, signature_value)
    if x_payment_value is None:
        if chain_value is not None:
            raise PaymentHeaderError(
                X_PAYMENT_CHAIN, f"{X_PAYMENT_CHAIN} was sent without an X-Payment transaction hash"
            )
        return None
    if x_payment_value.startswith(("0x", "0X")):
        return _decode_pushed(x_payment_value, chain_value, networks)
    if chain_value is not None:
        raise PaymentHeaderError(
            X_PAYMENT_CHAIN, f"{X_PAYMENT_CHAIN} only accompanies a transaction hash"
        )
    return _decode_signed(X_PAYMENT, x_payment_value)


def _present(value: str | None) -> str | None:
    if value is None:
        return None
    stripped = value.strip()
    return stripped or None


def _decode_pushed(
    value: str, chain_value: str | None, networks: Iterable[Network]
) -> PushedPayment:
    if not _TX_HASH.fullmatch(value):
        raise PaymentHeaderError(
            X_PAYMENT, "a transaction hash must be 0x followed by 64 hex digits"
        )
    configured = list(networks)
    names = ", ".join(network.name for network in configured) or "none"
    if chain_value is None:
        raise PaymentHeaderError(
            X_PAYMENT_CHAIN,
            f"{X_PAYMENT_CHAIN} is required with a transaction hash (one of: {names})",
        )
    network = next((n for n in configured if n.name == chain_value.lower()), None)
    if network is None:
        known = chain_value.lower() in NETWORK_NAMES
        why = "is not enabled here" if known else "is not a known network"
        raise PaymentHeaderError(X_PAYMENT_CHAIN, f"{chain_value[:40]!r} {why} (one of: {names})")
    return PushedPayment(tx_hash=value.lower(), network=network)


def _decode_signed(header: str, value: str) -> SignedPayment:
    data = _base64_json(header, value)
    version = data.get("x402Version")
    if version == 2:
        return _from_v2(header, data)
    if version == 1:
        return _from_v1(header, data)
    raise PaymentHeaderError(header, f"unsupported x402Version {str(version)[:20]!r} (use 1 or 2)")


def _base64_json(header: str, value: str) -> dict[str, Any]:
    if len(value) > MAX_HEADER_CHARS:
        raise PaymentHeaderError(header, f"value is longer than {MAX_HEADER_CHARS} characters")
    # Standard base64 is what the SDKs send; URL-safe and unpadded forms are accepted too.
    normalized = value.replace("-", "+").replace("_", "/")
    normalized += "=" * (-len(normalized) % 4)
    try:
        raw = base64.b64decode(normalized, validate=True)
    except (binascii.Error, ValueError):
        raise PaymentHeaderError(header, "value is not base64") from None
    if raw.count(b"{") + raw.count(b"[") > MAX_PAYLOAD_BRACKETS:
        raise PaymentHeaderError(header, "payload holds too many objects and arrays")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise PaymentHeaderError(header, "value is base64 but not JSON") from None
    if not isinstance(data, dict):
        raise PaymentHeaderError(header, "payload must be a JSON object")
    return data


def _from_v2(header: str, data: dict[str, Any]) -> SignedPayment:
    try:
        payload = PaymentPayload.model_validate(data)
    except ValidationError as exc:
        raise PaymentHeaderError(header, _pydantic_message(exc)) from None
    authorization, signature = _exact_payload(header, payload.payload)
    return SignedPayment(
        version=2,
        scheme=payload.accepted.scheme,
        network=payload.accepted.network,
        authorization=authorization,
        signature=signature,
        accepted=payload.accepted,
        resource=payload.resource,
        extensions=dict(payload.extensions) if payload.extensions else None,
        payload_hash=_canonical_hash(data),
    )


def _from_v1(header: str, data: dict[str, Any]) -> SignedPayment:
    try:
        payload = PaymentPayloadV1.model_validate(data)
    except ValidationError as exc:
        raise PaymentHeaderError(header, _pydantic_message(exc)) from None
    authorization, signature = _exact_payload(header, payload.payload)
    return SignedPayment(
        version=1,
        scheme=payload.scheme,
        network=payload.network,
        authorization=authorization,
        signature=signature,
        payload_hash=_canonical_hash(data),
    )


def _canonical_hash(data: dict[str, Any]) -> str:
    return hashlib.sha256(
        json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def _pydantic_message(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first.get("loc", ())) or "payload"
    return f"invalid payment payload: {where}: {first.get('msg', 'invalid')}"


def _exact_payload(header: str, inner: dict[str, Any]) -> tuple[TransferAuthorization, str]:
    if "permit2Authorization" in inner:
        raise PaymentHeaderError(
            header, "Permit2 payloads are not accepted: sign an EIP-3009 transferWithAuthorization"
        )
    try:
        wire = msgspec.convert(inner, type=_WireExactPayload)
    except msgspec.ValidationError as exc:
        raise PaymentHeaderError(header, f"invalid exact payload: {exc}") from None
    auth = wire.authorization

    def address(label: str, text: str) -> str:
        if not is_address(text) or not text.startswith("0x"):
            raise PaymentHeaderError(header, f"authorization.{label} is not an address")
        return to_checksum_address(text)

    def uint(label: str, raw: str | int) -> int:
        text = str(raw)
        if isinstance(raw, bool) or not _DIGITS.fullmatch(text) or int(text) > _UINT256_MAX:
            raise PaymentHeaderError(
                header, f"authorization.{label} must be a non-negative integer (uint256)"
            )
        return int(text)

    if not _NONCE.fullmatch(auth.nonce):
        raise PaymentHeaderError(header, "authorization.nonce must be 0x followed by 64 hex digits")
    signature = wire.signature
    if not _HEX.fullmatch(signature) or len(signature) > 2 + 2 * MAX_SIGNATURE_BYTES:
        raise PaymentHeaderError(header, "signature must be 0x-prefixed hex bytes")
    authorization = TransferAuthorization(
        from_address=address("from", auth.from_address),
        to_address=address("to", auth.to),
        value=uint("value", auth.value),
        valid_after=uint("validAfter", auth.valid_after),
        valid_before=uint("validBefore", auth.valid_before),
        nonce=auth.nonce.lower(),
    )
    return authorization, signature.lower()
