"""Permit2 and the x402 ``upto`` proxy: canonical addresses, the settle call, dev-chain install.

The ``upto`` scheme pays through Uniswap's Permit2 (the client signs a
``PermitWitnessTransferFrom`` whose spender is the x402 upto proxy) and the proxy's
``settle(permit, amount, owner, witness, signature)``, which moves any amount up to the signed
maximum to the signed recipient when the signed facilitator calls it. The addresses and the ABI
are the official SDK's (``x402.mechanisms.evm.constants``).

On a dev chain Permit2 is the real thing: its creation code ships in ``@uniswap/uniswapx-sdk``
(chain/node) and is deployed through anvil's CREATE2 deployer with Permit2's published salt, so
it lands at its canonical address (checked before it is sent). The proxy ships in no package,
so chain/contracts/TestUptoProxy.sol (same ABI, same rules) is installed at its canonical
address with ``anvil_setCode``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from x402.mechanisms.evm.constants import (
    PERMIT2_ADDRESS,
    X402_UPTO_PERMIT2_PROXY_ADDRESS,
)

__all__ = [
    "CREATE2_DEPLOYER",
    "PERMIT2_ADDRESS",
    "PERMIT2_SALT",
    "UPTO_PROXY_ADDRESS",
    "UptoSettle",
    "encode_upto_settle",
    "install_permit2",
    "permit2_creation_code",
]

UPTO_PROXY_ADDRESS = to_checksum_address(X402_UPTO_PERMIT2_PROXY_ADDRESS)
# The deterministic deployment proxy every anvil (and most chains) has at this address.
CREATE2_DEPLOYER = "0x4e59b44847b379578588920cA78FbF26c0B4956C"
# The salt Uniswap deployed Permit2 with (its address is the same on every chain).
PERMIT2_SALT = bytes.fromhex("0000000000000000000000000000000000000000d3af2663da51c10215000000")

_NODE_DIR = Path(__file__).resolve().parent / "node"
_PERMIT2_FACTORY = (_NODE_DIR / "node_modules" / "@uniswap" / "uniswapx-sdk" / "dist" / "cjs"
                    / "src" / "contracts" / "factories" / "Permit2__factory.js")
PROXY_ARTIFACT_PATH = Path(__file__).resolve().parent / "contracts" / "TestUptoProxy.json"

_SETTLE_SELECTOR = keccak(
    text="settle(((address,uint256),uint256,uint256),uint256,address,(address,address,uint256),bytes)"
)[:4]
_APPROVE_SELECTOR = keccak(text="approve(address,uint256)")[:4]
_NONCE_BITMAP_SELECTOR = keccak(text="nonceBitmap(address,uint256)")[:4]


class _Artifact(msgspec.Struct, frozen=True, rename="camel"):
    deployed_bytecode: str


@functools.cache
def permit2_creation_code() -> bytes:
    """Permit2's creation code as @uniswap/uniswapx-sdk ships it (installed by ``make setup``)."""
    text = _PERMIT2_FACTORY.read_text()
    found = re.search(r'_bytecode\s*=\s*"(0x[0-9a-fA-F]+)"', text)
    if found is None:
        raise ValueError(f"no Permit2 creation code in {_PERMIT2_FACTORY}")
    return bytes.fromhex(found.group(1)[2:])


def create2_address(deployer: str, salt: bytes, init_code: bytes) -> str:
    raw = keccak(b"\xff" + bytes.fromhex(deployer[2:]) + salt + keccak(init_code))[12:]
    return to_checksum_address(raw)


class UptoSettle(msgspec.Struct, frozen=True):
    """One ``settle`` of a signed upto authorization: what the proxy is called with."""

    token: str
    max_amount: int
    nonce: int
    deadline: int
    owner: str
    to: str
    facilitator: str
    valid_after: int
    signature: str
    amount: int


def encode_upto_settle(call: UptoSettle) -> str:
    """The proxy's ``settle`` calldata (hex) for ``call``."""
    signature = bytes.fromhex(call.signature.removeprefix("0x"))
    args = abi_encode(
        ["((address,uint256),uint256,uint256)", "uint256", "address",
         "(address,address,uint256)", "bytes"],
        [
            ((to_checksum_address(call.token), call.max_amount), call.nonce, call.deadline),
            call.amount,
            to_checksum_address(call.owner),
            (to_checksum_address(call.to), to_checksum_address(call.facilitator),
             call.valid_after),
            signature,
        ],
    )
    return "0x" + (_SETTLE_SELECTOR + args).hex()


def encode_nonce_bitmap(owner: str, nonce: int) -> tuple[str, int]:
    """Permit2 ``nonceBitmap(owner, word)`` calldata for ``nonce``, and the nonce's bit."""
    data = _NONCE_BITMAP_SELECTOR + abi_encode(["address", "uint256"],
                                               [to_checksum_address(owner), nonce >> 8])
    return "0x" + data.hex(), 1 << (nonce & 0xFF)


def encode_approve_permit2(amount: int = 2**256 - 1) -> str:
    """ERC-20 ``approve(Permit2, amount)`` calldata: the payer's one-time Permit2 approval."""
    data = _APPROVE_SELECTOR + abi_encode(["address", "uint256"], [PERMIT2_ADDRESS, amount])
    return "0x" + data.hex()


def install_permit2(rpc: Callable[..., Any], deployer_account: str,
                    wait: Callable[[str], None]) -> None:
    """Deploy Permit2 at its canonical address (CREATE2 with its salt) and install the test
    upto proxy at the proxy's canonical address. ``rpc(method, *params)`` is a JSON-RPC call;
    ``wait(tx_hash)`` returns once the transaction is mined (and raises if it reverted)."""
    code = permit2_creation_code()
    target = create2_address(CREATE2_DEPLOYER, PERMIT2_SALT, code)
    if target != to_checksum_address(PERMIT2_ADDRESS):
        raise ValueError(f"this creation code would deploy Permit2 at {target}, not canonically")
    if rpc("eth_getCode", PERMIT2_ADDRESS, "latest") in (None, "0x", ""):
        tx = {"from": deployer_account, "to": CREATE2_DEPLOYER,
              "data": "0x" + (PERMIT2_SALT + code).hex(), "gas": hex(6_000_000)}
        wait(rpc("eth_sendTransaction", tx))
        if rpc("eth_getCode", PERMIT2_ADDRESS, "latest") in (None, "0x", ""):
            raise ValueError("Permit2 was not deployed at its canonical address")
    proxy = msgspec.json.decode(PROXY_ARTIFACT_PATH.read_bytes(), type=_Artifact)
    rpc("anvil_setCode", UPTO_PROXY_ADDRESS, proxy.deployed_bytecode)
