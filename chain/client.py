"""One small typed client over web3 for everything passgate asks a chain.

Why ``AsyncWeb3``: the API (Litestar) and the workers (Dramatiq async actors) both run on an
event loop, and a sync client would block it for a full RPC round trip on every call.

Why our own HTTP provider (httpx) instead of web3's ``AsyncHTTPProvider``:
- one hard timeout per call, and no hidden retries (callers own backoff, e.g. the watcher);
- HTTP 4xx answers keep their JSON-RPC error body, which is where hosted providers say
  "range too large" (aiohttp's ``raise_for_status`` in web3's provider drops it);
- connection failures surface as ``RpcUnavailable`` instead of aiohttp/web3 internals.

A restarted node needs no retry of ours: before reusing a kept-alive connection, httpx
(httpcore) checks that the node has not closed it, and drops connections idle for over 5 s, so
the first call after a restart goes out on a fresh connection.

All results are small frozen msgspec Structs with plain ``int``/``str`` fields: checksummed
addresses and lowercase ``0x`` hex hashes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from eth_typing import HexStr
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3.exceptions import (
    ContractLogicError,
    Web3Exception,
    Web3RPCError,
)
from web3.types import RPCEndpoint, TxParams

from chain.errors import (
    ChainError,
    ExecutionReverted,
    RpcError,
    RpcUnavailable,
    classify_rpc_error,
    decode_revert_reason,
)
from chain.networks import Network
from chain.records import BlockHeader, FeeEstimate, Receipt, SimulationResult, TransferLog
from chain.rpc_decode import (
    address_topic,
    checksum,
    decode_authorization_use,
    decode_header,
    decode_transfer,
    is_authorization_use,
    is_transfer,
    transfers_of,
)
from chain.transport import Endpoint
from chain.usdc import (
    AUTHORIZATION_USED_TOPIC,
    TRANSFER_TOPIC,
    TransferAuthorization,
    encode_transfer_with_authorization,
)

__all__ = [
    "BlockHeader",
    "ChainClient",
    "FeeEstimate",
    "Receipt",
    "SimulationResult",
    "TransferLog",
]

DEFAULT_TIMEOUT_SECONDS = 10.0
# Hosted providers cap JSON-RPC batches (commonly at 100 or 1,000 calls).
_BATCH_SIZE = 100
_T = TypeVar("_T")
BlockTag = Literal["latest", "pending", "safe", "finalized", "earliest"]


class ChainClient:
    """Async access to one chain and its USDC token.

    Every call is bounded by ``timeout`` seconds and raises only ``chain.errors`` exceptions.
    With several RPC URLs, a call that finds its node unavailable raises ``RpcUnavailable`` and
    the *next* call goes to the next URL: no hidden retries, so callers keep control of backoff.
    """

    def __init__(
        self,
        rpc_urls: str | Sequence[str],
        *,
        token_address: str,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        urls = [rpc_urls] if isinstance(rpc_urls, str) else list(rpc_urls)
        if not urls:
            raise ValueError("ChainClient needs at least one RPC URL")
        self.token_address = to_checksum_address(token_address)
        self.timeout = timeout
        self._endpoints = [Endpoint(url, timeout, self.token_address) for url in urls]
        self._current = 0

    @classmethod
    def for_network(cls, network: Network, *, timeout: float = DEFAULT_TIMEOUT_SECONDS) -> Self:
        return cls(network.rpc_urls, token_address=network.usdc_address, timeout=timeout)

    async def close(self) -> None:
        for endpoint in self._endpoints:
            await endpoint.provider.disconnect()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # ------------------------------------------------------------------ plumbing

    @contextlib.asynccontextmanager
    async def _guard(self, method: str) -> AsyncIterator[Endpoint]:
        """Bound the call in time and translate whatever web3/httpx raise into our tree."""
        index = self._current
        endpoint = self._endpoints[index]
        try:
            async with asyncio.timeout(self.timeout):
                yield endpoint
        except ChainError as exc:
            if isinstance(exc, RpcUnavailable):
                self._rotate(index)
            raise
        except TimeoutError as exc:
            self._rotate(index)
            raise RpcUnavailable(f"{method} timed out after {self.timeout:g}s") from exc
        except ContractLogicError as exc:
            raise _reverted(method, exc) from exc
        except Web3RPCError as exc:
            error = (exc.rpc_response or {}).get("error") or exc.message
            raise classify_rpc_error(method, error) from exc
        except (Web3Exception, ValueError, KeyError, TypeError) as exc:
            # Malformed answers (missing fields, bad hex) are a node problem, not ours to crash on.
            raise RpcError(
                f"{method}: unexpected response ({type(exc).__name__})", method=method
            ) from exc

    def _rotate(self, failed_index: int) -> None:
        if len(self._endpoints) > 1 and self._current == failed_index:
            self._current = (failed_index + 1) % len(self._endpoints)

    async def rpc(self, method: str, params: Sequence[Any] = ()) -> Any:
        """Raw JSON-RPC call (dev/test methods such as ``anvil_setCode``, ``evm_mine``)."""
        async with self._guard(method) as endpoint:
            response = await endpoint.provider.make_request(RPCEndpoint(method), list(params))
            if "error" in response:
                raise classify_rpc_error(method, response["error"])
            return response.get("result")

    # ------------------------------------------------------------------ chain state

    async def chain_id(self) -> int:
        async with self._guard("eth_chainId") as endpoint:
            return int(await endpoint.w3.eth.chain_id)

    async def block_number(self) -> int:
        async with self._guard("eth_blockNumber") as endpoint:
            return int(await endpoint.w3.eth.block_number)

    async def get_block(self, block: int | BlockTag = "latest") -> BlockHeader | None:
        """The header of a block, or None when the node does not have it (yet)."""
        identifier = hex(block) if isinstance(block, int) else block
        return decode_header(await self.rpc("eth_getBlockByNumber", [identifier, False]))

    async def get_blocks(self, numbers: Sequence[int]) -> list[BlockHeader | None]:
        """Headers of many blocks in one JSON-RPC batch per 100 (e.g. to re-check recent
        hashes for reorgs); None for blocks the node does not have."""
        headers: list[BlockHeader | None] = []
        for start in range(0, len(numbers), _BATCH_SIZE):
            chunk = numbers[start : start + _BATCH_SIZE]
            async with self._guard("eth_getBlockByNumber") as endpoint:
                batch = [
                    (RPCEndpoint("eth_getBlockByNumber"), [hex(number), False]) for number in chunk
                ]
                responses = await endpoint.provider.make_batch_request(batch)
            if not isinstance(responses, list) or len(responses) != len(chunk):
                error = responses.get("error") if isinstance(responses, dict) else None
                raise classify_rpc_error("eth_getBlockByNumber", error or "bad batch response")
            for response in responses:
                if "error" in response:
                    raise classify_rpc_error("eth_getBlockByNumber", response["error"])
                headers.append(decode_header(response.get("result")))
        return headers

    async def get_transfer_logs(
        self, from_block: int, to_block: int, *, to_addresses: Sequence[str] | None = None
    ) -> list[TransferLog]:
        """USDC ``Transfer`` logs in ``[from_block, to_block]`` (inclusive), oldest first.

        ``to_addresses`` filters on the indexed ``to`` topic at the node (None: every transfer).
        Raises ``RangeTooLarge`` when the provider refuses the range or the result size.
        """
        if from_block > to_block or (to_addresses is not None and not to_addresses):
            return []
        # Our own decoding instead of w3.eth.get_logs: web3's result formatters (checksumming
        # every log's address, HexBytes everywhere) cost ~10x the HTTP round trip on backfills.
        async with self._guard("eth_getLogs") as endpoint:
            logs = await endpoint.provider.request_logs(
                [self._transfer_filter(from_block, to_block, to_addresses)]
            )
        return transfers_of(logs)

    async def scan_transfer_logs(
        self, from_block: int, to_block: int, *, to_addresses: Sequence[str]
    ) -> tuple[list[TransferLog], BlockHeader | None]:
        """``get_transfer_logs`` and the header of ``to_block``, asked in one JSON-RPC batch.

        A node that has not got the whole range yet answers ``eth_getLogs`` with the logs it
        has, not with an error. Behind a load balancer (or after a failover to another URL) the
        node answering the logs may be behind the one that gave the head, so the header is
        asked of the same node, in the same batch (which balancers keep on one backend): None
        means that node does not have ``to_block``, and its logs must not be trusted yet.
        """
        if from_block > to_block or not to_addresses:
            return [], await self.get_block(to_block)
        async with self._guard("eth_getLogs") as endpoint:
            logs, block = await endpoint.provider.request_logs_and_header(
                self._transfer_filter(from_block, to_block, to_addresses), to_block
            )
        return transfers_of(logs), decode_header(block)

    def _transfer_filter(
        self, from_block: int, to_block: int, to_addresses: Sequence[str] | None
    ) -> dict[str, Any]:
        to_topics = None if to_addresses is None else [address_topic(a) for a in to_addresses]
        return {
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
            "address": self.token_address,
            "topics": [TRANSFER_TOPIC, None, to_topics],
        }

    async def authorization_uses(
        self, authorizer: str, nonce: str, from_block: int, to_block: int
    ) -> list[str]:
        """Hashes of the transactions in ``[from_block, to_block]`` that spent ``authorizer``'s
        EIP-3009 ``nonce`` (its ``AuthorizationUsed`` logs), oldest first."""
        params = {
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
            "address": self.token_address,
            "topics": [AUTHORIZATION_USED_TOPIC, address_topic(authorizer), nonce.lower()],
        }
        logs = await self.rpc("eth_getLogs", [params])
        try:
            return [str(log["transactionHash"]).lower() for log in logs]
        except (KeyError, TypeError) as exc:
            raise RpcError("eth_getLogs: malformed log", method="eth_getLogs") from exc

    async def get_receipt(self, tx_hash: str) -> Receipt | None:
        """The receipt of a mined transaction, or None while it is pending or unknown."""
        data = await self.rpc("eth_getTransactionReceipt", [tx_hash])
        if data is None:
            return None
        try:
            token = self.token_address.lower()
            mine = [log for log in data["logs"] if str(log["address"]).lower() == token]
            transfers = tuple(decode_transfer(log) for log in mine if is_transfer(log))
            authorizations = tuple(
                decode_authorization_use(log) for log in mine if is_authorization_use(log)
            )
            to_address = data.get("to")
            return Receipt(
                tx_hash=str(data["transactionHash"]).lower(),
                status=int(data["status"], 16),
                block_number=int(data["blockNumber"], 16),
                block_hash=str(data["blockHash"]).lower(),
                from_address=checksum(data["from"]),
                to_address=checksum(to_address) if to_address else None,
                gas_used=int(data["gasUsed"], 16),
                effective_gas_price=int(data.get("effectiveGasPrice") or "0x0", 16),
                transfers=transfers,
                authorizations=authorizations,
            )
        except (KeyError, ValueError, TypeError, IndexError) as exc:
            raise RpcError(
                "eth_getTransactionReceipt: malformed receipt", method="eth_getTransactionReceipt"
            ) from exc

    async def get_nonce(self, address: str, *, pending: bool = True) -> int:
        """Transaction count of ``address``: including the mempool (``pending``) or mined only."""
        async with self._guard("eth_getTransactionCount") as endpoint:
            block: BlockTag = "pending" if pending else "latest"
            return int(
                await endpoint.w3.eth.get_transaction_count(to_checksum_address(address), block)
            )

    async def get_eth_balance(self, address: str) -> int:
        async with self._guard("eth_getBalance") as endpoint:
            return int(await endpoint.w3.eth.get_balance(to_checksum_address(address)))

    async def estimate_fees(self) -> FeeEstimate:
        """Current EIP-1559 fees from the latest base fee and the node's suggested tip."""
        header = await self.get_block("latest")
        if header is None or header.base_fee_per_gas is None:
            raise RpcError("latest block has no base fee (pre-London chain?)")
        async with self._guard("eth_maxPriorityFeePerGas") as endpoint:
            tip = int(await endpoint.w3.eth.max_priority_fee)
        base = header.base_fee_per_gas
        return FeeEstimate(base_fee=base, max_priority_fee=tip, max_fee=2 * base + tip)

    async def estimate_gas(self, *, sender: str, to: str, data: str, value: int = 0) -> int:
        async with self._guard("eth_estimateGas") as endpoint:
            tx: TxParams = {
                "from": to_checksum_address(sender),
                "to": to_checksum_address(to),
                "data": HexStr(data),
                "value": value,  # type: ignore[typeddict-item]  # Wei is a NewType of int
            }
            return int(await endpoint.w3.eth.estimate_gas(tx))

    async def send_raw_transaction(self, raw_transaction: bytes | str) -> str:
        """Broadcast a signed transaction; returns its hash. Rejections raise
        ``TransactionRejected`` with a ``kind`` (nonce_too_low, underpriced, already_known...)."""
        raw = raw_transaction if isinstance(raw_transaction, bytes) else HexBytes(raw_transaction)
        async with self._guard("eth_sendRawTransaction") as endpoint:
            return _hex(await endpoint.w3.eth.send_raw_transaction(raw))

    # ------------------------------------------------------------------ USDC

    async def balance_of(self, address: str) -> int:
        """USDC balance in base units (6 decimals)."""
        async with self._guard("eth_call") as endpoint:
            result = await endpoint.token.functions.balanceOf(to_checksum_address(address)).call()
            return int(result)

    async def authorization_state(self, authorizer: str, nonce: str) -> bool:
        """True once an EIP-3009 nonce of ``authorizer`` has been used (or canceled)."""
        async with self._guard("eth_call") as endpoint:
            call = endpoint.token.functions.authorizationState(
                to_checksum_address(authorizer), HexBytes(nonce)
            )
            return bool(await call.call())

    async def simulate_transfer_with_authorization(
        self,
        authorization: TransferAuthorization,
        signature: str | bytes,
        *,
        sender: str | None = None,
        block: BlockTag = "latest",
    ) -> SimulationResult:
        """``eth_call`` the exact calldata the settlement signer would send, on ``block``.

        A revert is an answer, not an error: it comes back as ``ok=False`` with the reason
        ("authorization is used or canceled", "ERC20: transfer amount exceeds balance", ...).
        """
        tx: TxParams = {
            "to": self.token_address,
            "data": HexStr(encode_transfer_with_authorization(authorization, signature)),
        }
        if sender is not None:
            tx["from"] = to_checksum_address(sender)
        try:
            async with self._guard("eth_call") as endpoint:
                await endpoint.w3.eth.call(tx, block, ccip_read_enabled=False)
        except ExecutionReverted as exc:
            return SimulationResult(ok=False, reason=exc.reason or exc.message)
        return SimulationResult(ok=True)


def _reverted(method: str, exc: ContractLogicError) -> ExecutionReverted:
    data = exc.data if isinstance(exc.data, str) else None
    message = exc.message or "execution reverted"
    reason = decode_revert_reason(data)
    if reason is None and message.startswith("execution reverted: "):
        reason = message.removeprefix("execution reverted: ")
    return ExecutionReverted(message, method=method, code=3, reason=reason, data=data)


def _hex(value: Any) -> str:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    return str(value).lower()
