"""A read-only ``FacilitatorEvmSigner`` for the SDK's verifier, backed by our ``ChainClient``.

The SDK's exact-EVM verifier is synchronous and asks its "signer" for chain reads (``get_code``,
``read_contract`` for the ``transferWithAuthorization`` simulation, ``isValidSignature``,
Multicall3). We run the verifier in a worker thread and answer each read by scheduling a
``ChainClient`` call on the event loop that owns the client, so:

- there is one RPC stack (our timeouts, failover across RPC URLs, error classification);
- the event loop is never blocked: it only awaits the worker thread;
- verification can never move money: every write method raises.

RPC failures are remembered in ``failures``: the SDK turns any exception during a check into a
"payment invalid" answer, and the caller must instead report the node as unavailable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar, cast

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_typing import ABIFunction
from eth_utils.abi import function_abi_to_4byte_selector, get_abi_input_types, get_abi_output_types
from eth_utils.address import to_checksum_address
from x402.mechanisms.evm.types import TransactionReceipt, TypedDataDomain, TypedDataField
from x402.mechanisms.evm.verify import verify_typed_data_strict

from chain.client import ChainClient
from chain.errors import ChainError, ExecutionReverted, RpcUnavailable

__all__ = ["ChainReader", "VerificationOnly"]

T = TypeVar("T")

# Slack on top of the client's own per-call timeout before the thread gives up waiting.
_WAIT_SLACK_SECONDS = 1.0


class VerificationOnly(RuntimeError):
    """The verifier tried to send a transaction; verification never does."""


class ChainReader:
    """Implements the SDK's ``FacilitatorEvmSigner`` protocol for reads only.

    Create one per verification, on the event loop thread, then call the SDK from a worker
    thread. ``sender`` (the settlement signer's address) is the ``from`` of simulated calls,
    so a simulation sees what the real settlement transaction would.
    """

    def __init__(
        self,
        client: ChainClient,
        loop: asyncio.AbstractEventLoop,
        *,
        sender: str | None = None,
    ) -> None:
        self._client = client
        self._loop = loop
        self._sender = to_checksum_address(sender) if sender else None
        self._codes: dict[str, bytes] = {}
        self.failures: list[ChainError] = []

    # ------------------------------------------------------------------ plumbing

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            coro.close()
            # Waiting here for the loop we are blocking would deadlock.
            raise RuntimeError("ChainReader must be called from a worker thread, not the loop")
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout=self._client.timeout + _WAIT_SLACK_SECONDS)
        except concurrent.futures.TimeoutError:
            future.cancel()
            failure = RpcUnavailable(f"RPC call did not finish within {self._client.timeout:g}s")
            self.failures.append(failure)
            raise failure from None
        except ExecutionReverted:
            raise  # an answer from the chain, not a failure to get one
        except ChainError as exc:
            self.failures.append(exc)
            raise

    def code_of(self, address: str) -> bytes | None:
        """Bytecode seen for ``address`` during this verification (None if never fetched)."""
        return self._codes.get(to_checksum_address(address))

    # ------------------------------------------------------------------ reads

    def get_addresses(self) -> list[str]:
        return [self._sender] if self._sender else []

    def get_chain_id(self) -> int:
        return self._run(self._client.chain_id())

    def get_code(self, address: str) -> bytes:
        checksummed = to_checksum_address(address)
        cached = self._codes.get(checksummed)
        if cached is not None:
            return cached
        raw = self._run(self._client.rpc("eth_getCode", [checksummed, "latest"]))
        code = bytes.fromhex(str(raw or "0x").removeprefix("0x"))
        self._codes[checksummed] = code
        return code

    def read_contract(
        self, address: str, abi: list[dict[str, Any]], function_name: str, *args: Any
    ) -> Any:
        entry = _function_entry(abi, function_name, len(args))
        data = function_abi_to_4byte_selector(entry) + abi_encode(
            get_abi_input_types(entry), list(args)
        )
        tx: dict[str, str] = {"to": to_checksum_address(address), "data": "0x" + data.hex()}
        if self._sender:
            tx["from"] = self._sender
        raw = self._run(self._client.rpc("eth_call", [tx, "latest"]))
        output_types = get_abi_output_types(entry)
        if not output_types:
            return None
        decoded = abi_decode(output_types, bytes.fromhex(str(raw).removeprefix("0x")))
        return decoded[0] if len(decoded) == 1 else list(decoded)

    def get_balance(self, address: str, token_address: str) -> int:
        if to_checksum_address(token_address) != self._client.token_address:
            raise ValueError("ChainReader only reads the balance of its client's token")
        return self._run(self._client.balance_of(address))

    def verify_typed_data(
        self,
        address: str,
        domain: TypedDataDomain,
        types: dict[str, list[TypedDataField]],
        primary_type: str,
        message: dict[str, Any],
        signature: bytes,
    ) -> bool:
        # The SDK's strict check mirrors the token's SignatureChecker: ecrecover for addresses
        # without code, EIP-1271 only for contracts (no ECDSA fallback).
        return verify_typed_data_strict(
            self,
            address,
            domain,
            types,  # type: ignore[arg-type]  # list[TypedDataField] fits the wider union
            primary_type,
            message,
            signature,
        )

    # ------------------------------------------------------------------ writes: never

    def write_contract(
        self,
        address: str,
        abi: list[dict[str, Any]],
        function_name: str,
        *args: Any,
        data_suffix: str | None = None,
    ) -> str:
        _refuse(function_name)

    def send_transaction(self, to: str, data: bytes) -> str:
        _refuse("a raw transaction")

    def wait_for_transaction_receipt(self, tx_hash: str) -> TransactionReceipt:
        _refuse("waiting for a receipt")


def _refuse(what: str) -> NoReturn:
    raise VerificationOnly(f"verification does not send transactions ({what})")


def _function_entry(abi: list[dict[str, Any]], name: str, arity: int) -> ABIFunction:
    for entry in abi:
        if (
            entry.get("type") == "function"
            and entry.get("name") == name
            and len(entry.get("inputs", [])) == arity
        ):
            return cast(ABIFunction, entry)
    raise ValueError(f"function {name} with {arity} arguments is not in the ABI")
