"""USDC helpers: the token ABI and EIP-3009 ``TransferWithAuthorization`` typed data.

The ABI comes from the compiled test token (``contracts/TestUSDC.json``); the functions passgate
calls (ERC-20, ``transferWithAuthorization`` overloads, ``authorizationState``) have the same
signatures on Circle's USDC, so one ABI serves every network.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from eth_abi.abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from chain.networks import Network

__all__ = [
    "ARTIFACT_PATH",
    "AUTHORIZATION_USED_TOPIC",
    "TRANSFER_TOPIC",
    "AuthorizationUse",
    "SignedAuthorization",
    "TokenArtifact",
    "TokenDomain",
    "TransferAuthorization",
    "authorization_in_calldata",
    "cancel_authorization_typed_data",
    "domain_separator",
    "encode_transfer_with_authorization",
    "load_artifact",
    "new_authorization",
    "new_nonce",
    "recover_authorization_signer",
    "sign_transfer_authorization",
    "token_abi",
    "transfer_authorization_typed_data",
]

ARTIFACT_PATH = Path(__file__).resolve().parent / "contracts" / "TestUSDC.json"

# topic0 of `Transfer(address indexed from, address indexed to, uint256 value)`.
TRANSFER_TOPIC = "0x" + keccak(text="Transfer(address,address,uint256)").hex()
# topic0 of `AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)` (EIP-3009).
AUTHORIZATION_USED_TOPIC = "0x" + keccak(text="AuthorizationUsed(address,bytes32)").hex()

_TRANSFER_WITH_AUTHORIZATION_BYTES_SELECTOR = keccak(
    text="transferWithAuthorization(address,address,uint256,uint256,uint256,bytes32,bytes)"
)[:4]

# Every token function that moves money with an EIP-3009 authorization (both signature forms,
# and the payee-only ``receive`` variant): their first six arguments are the authorization.
_AUTHORIZATION_SELECTORS = frozenset(
    keccak(text=f"{name}(address,address,uint256,uint256,uint256,bytes32,{tail})")[:4]
    for name in ("transferWithAuthorization", "receiveWithAuthorization")
    for tail in ("bytes", "uint8,bytes32,bytes32")
)

_TRANSFER_WITH_AUTHORIZATION_TYPES = {
    "EIP712Domain": [
        {"name": "name", "type": "string"},
        {"name": "version", "type": "string"},
        {"name": "chainId", "type": "uint256"},
        {"name": "verifyingContract", "type": "address"},
    ],
    "TransferWithAuthorization": [
        {"name": "from", "type": "address"},
        {"name": "to", "type": "address"},
        {"name": "value", "type": "uint256"},
        {"name": "validAfter", "type": "uint256"},
        {"name": "validBefore", "type": "uint256"},
        {"name": "nonce", "type": "bytes32"},
    ],
}


class TokenArtifact(msgspec.Struct, frozen=True, rename="camel"):
    """The compiled test token as written by ``chain/node/compile.mjs``."""

    contract_name: str
    compiler: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str


@functools.cache
def load_artifact() -> TokenArtifact:
    """The committed ABI + bytecode of the test token (cached: it never changes at runtime)."""
    return msgspec.json.decode(ARTIFACT_PATH.read_bytes(), type=TokenArtifact)


def token_abi() -> list[dict[str, Any]]:
    """A fresh copy of the token ABI (web3 keeps references to what it is given)."""
    abi: list[dict[str, Any]] = json.loads(json.dumps(load_artifact().abi))
    return abi


@dataclass(frozen=True, slots=True)
class TokenDomain:
    """The EIP-712 domain a USDC deployment signs over."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    @classmethod
    def for_network(cls, network: Network) -> TokenDomain:
        return cls(
            network.eip712_name, network.eip712_version, network.chain_id, network.usdc_address
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": to_checksum_address(self.verifying_contract),
        }


class TransferAuthorization(msgspec.Struct, frozen=True):
    """The EIP-3009 message: ``from`` may move ``value`` to ``to`` once, inside the window.

    ``valid_after``/``valid_before`` are unix seconds (exclusive bounds, as the token checks
    ``after < block.timestamp < before``); ``nonce`` is 32 random bytes as ``0x`` hex.
    """

    from_address: str
    to_address: str
    value: int
    valid_after: int
    valid_before: int
    nonce: str


class AuthorizationUse(msgspec.Struct, frozen=True):
    """An EIP-3009 authorization a transaction spends: its ``authorizer`` (who pays) and
    ``nonce``, both lower-case ``0x`` hex. Together they name one authorization on a token."""

    authorizer: str
    nonce: str


def authorization_in_calldata(data: str) -> AuthorizationUse | None:
    """The authorization a direct call of the token's ``...WithAuthorization`` functions would
    spend, read from the call's data; None for any other call (or undecodable data)."""
    try:
        raw = bytes.fromhex(data.removeprefix("0x"))
    except ValueError:
        return None
    if len(raw) < 4 + 6 * 32 or raw[:4] not in _AUTHORIZATION_SELECTORS:
        return None
    words = raw[4:]
    return AuthorizationUse(authorizer="0x" + words[12:32].hex(), nonce="0x" + words[160:192].hex())


class SignedAuthorization(msgspec.Struct, frozen=True):
    """An authorization with its signature in both forms the token accepts."""

    authorization: TransferAuthorization
    v: int
    r: str
    s: str
    signature: str  # 65 bytes r || s || v, 0x hex


def new_nonce() -> str:
    """A fresh random EIP-3009 nonce (the token only remembers used ones, so it must not repeat)."""
    return "0x" + secrets.token_hex(32)


def new_authorization(
    from_address: str,
    to_address: str,
    value: int,
    *,
    valid_seconds: int = 600,
    now: int | None = None,
    nonce: str | None = None,
) -> TransferAuthorization:
    """An authorization valid from a minute ago (clock skew) for ``valid_seconds``."""
    current = int(time.time()) if now is None else now
    return TransferAuthorization(
        from_address=to_checksum_address(from_address),
        to_address=to_checksum_address(to_address),
        value=value,
        valid_after=max(current - 60, 0),
        valid_before=current + valid_seconds,
        nonce=nonce or new_nonce(),
    )


def transfer_authorization_typed_data(
    authorization: TransferAuthorization, domain: TokenDomain
) -> dict[str, Any]:
    """The full EIP-712 message (``eth_signTypedData_v4`` shape) for an authorization."""
    return {
        "types": _TRANSFER_WITH_AUTHORIZATION_TYPES,
        "primaryType": "TransferWithAuthorization",
        "domain": domain.as_dict(),
        "message": {
            "from": to_checksum_address(authorization.from_address),
            "to": to_checksum_address(authorization.to_address),
            "value": authorization.value,
            "validAfter": authorization.valid_after,
            "validBefore": authorization.valid_before,
            "nonce": _bytes32(authorization.nonce),
        },
    }


def cancel_authorization_typed_data(
    authorizer: str, nonce: str, domain: TokenDomain
) -> dict[str, Any]:
    """The EIP-712 message of EIP-3009 ``cancelAuthorization``: ``authorizer`` gives up an
    unused ``nonce``."""
    return {
        "types": {
            "EIP712Domain": _TRANSFER_WITH_AUTHORIZATION_TYPES["EIP712Domain"],
            "CancelAuthorization": [
                {"name": "authorizer", "type": "address"},
                {"name": "nonce", "type": "bytes32"},
            ],
        },
        "primaryType": "CancelAuthorization",
        "domain": domain.as_dict(),
        "message": {"authorizer": to_checksum_address(authorizer), "nonce": _bytes32(nonce)},
    }


def domain_separator(domain: TokenDomain) -> bytes:
    """``DOMAIN_SEPARATOR`` as eth-account computes it (to compare with the token's)."""
    # Any message under the domain will do: the header of an encoded message is the separator.
    probe = TransferAuthorization(
        domain.verifying_contract, domain.verifying_contract, 0, 0, 0, "0x" + "00" * 32
    )
    return bytes(
        encode_typed_data(full_message=transfer_authorization_typed_data(probe, domain)).header
    )


def sign_transfer_authorization(
    private_key: str | bytes, authorization: TransferAuthorization, domain: TokenDomain
) -> SignedAuthorization:
    """Sign an authorization; never logs or returns the key."""
    signed = Account.sign_typed_data(
        private_key, full_message=transfer_authorization_typed_data(authorization, domain)
    )
    return SignedAuthorization(
        authorization=authorization,
        v=signed.v,
        r="0x" + signed.r.to_bytes(32, "big").hex(),
        s="0x" + signed.s.to_bytes(32, "big").hex(),
        signature="0x" + bytes(signed.signature).hex(),
    )


def recover_authorization_signer(
    authorization: TransferAuthorization, signature: str | bytes, domain: TokenDomain
) -> str:
    """The checksummed address that signed ``authorization`` (raises on a malformed signature)."""
    message = encode_typed_data(
        full_message=transfer_authorization_typed_data(authorization, domain)
    )
    raw = bytes.fromhex(signature.removeprefix("0x")) if isinstance(signature, str) else signature
    return str(Account.recover_message(message, signature=raw))


def encode_transfer_with_authorization(
    authorization: TransferAuthorization, signature: str | bytes
) -> str:
    """Calldata for ``transferWithAuthorization(..., bytes signature)`` as ``0x`` hex.

    The settlement signer sends exactly these bytes and ``ChainClient`` simulates them, so what
    is simulated is what gets submitted.
    """
    raw = bytes.fromhex(signature.removeprefix("0x")) if isinstance(signature, str) else signature
    arguments = abi_encode(
        ["address", "address", "uint256", "uint256", "uint256", "bytes32", "bytes"],
        [
            to_checksum_address(authorization.from_address),
            to_checksum_address(authorization.to_address),
            authorization.value,
            authorization.valid_after,
            authorization.valid_before,
            _bytes32(authorization.nonce),
            raw,
        ],
    )
    return "0x" + (_TRANSFER_WITH_AUTHORIZATION_BYTES_SELECTOR + arguments).hex()


def _bytes32(value: str) -> bytes:
    raw = bytes.fromhex(value.removeprefix("0x"))
    if len(raw) != 32:
        raise ValueError("nonce must be 32 bytes")
    return raw
