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
import functools
import json
from collections.abc import AsyncIterator, Sequence
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast

import httpx
import msgspec
from eth_typing import URI, ChecksumAddress, HexStr
from eth_utils.address import to_checksum_address
from hexbytes import HexBytes
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.exceptions import (
    ContractLogicError,
    Web3Exception,
    Web3RPCError,
)
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse, TxParams

from chain.errors import (
    ChainError,
    ExecutionReverted,
    RpcError,
    RpcUnavailable,
    classify_rpc_error,
    decode_revert_reason,
)
from chain.networks import Network
from chain.usdc import (
    AUTHORIZATION_USED_TOPIC,
    TRANSFER_TOPIC,
    AuthorizationUse,
    TransferAuthorization,
    encode_transfer_with_authorization,
    token_abi,
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


class BlockHeader(msgspec.Struct, frozen=True):
    number: int
    hash: str
    parent_hash: str
    timestamp: int
    base_fee_per_gas: int | None = None


class TransferLog(msgspec.Struct, frozen=True, gc=False):
    """A decoded ERC-20 ``Transfer`` log; unique by (chain, ``tx_hash``, ``log_index``).

    ``gc=False`` (only ints and strings inside, so it cannot be part of a cycle): a backfill
    keeps tens of thousands alive across collections, and tracked, each would count towards
    the next full collection of the whole heap (0.1-0.2 s each, measured in the watcher)."""

    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    from_address: str
    to_address: str
    value: int


class Receipt(msgspec.Struct, frozen=True):
    """A mined transaction. ``transfers`` are the token's Transfer logs inside it, and
    ``authorizations`` the EIP-3009 authorizations it spent (the token's ``AuthorizationUsed``
    logs)."""

    tx_hash: str
    status: int  # 1 success, 0 reverted
    block_number: int
    block_hash: str
    from_address: str
    to_address: str | None
    gas_used: int
    effective_gas_price: int
    transfers: tuple[TransferLog, ...]
    authorizations: tuple[AuthorizationUse, ...] = ()


class FeeEstimate(msgspec.Struct, frozen=True):
    """EIP-1559 fees in wei. ``max_fee`` = 2 x base fee + tip, which stays valid through
    several consecutive full blocks (each may raise the base fee by 12.5%)."""

    base_fee: int
    max_priority_fee: int
    max_fee: int


class SimulationResult(msgspec.Struct, frozen=True):
    ok: bool
    reason: str | None = None


def _json_body(response: httpx.Response) -> Any:
    status = response.status_code
    try:
        decoded = json.loads(response.content)
    except ValueError:
        decoded = None
    if isinstance(decoded, dict | list):
        # A JSON-RPC body is authoritative even on HTTP 4xx/5xx: it says what went wrong.
        return decoded
    if status >= 500:
        raise RpcUnavailable(f"RPC answered HTTP {status}")
    raise RpcError(f"RPC answered HTTP {status} without a JSON-RPC body")


class _RawLog(msgspec.Struct, gc=False, rename="camel"):
    """The fields of a JSON-RPC log that a Transfer needs (the rest of each log is skipped
    while parsing). Typed decoding is several times cheaper than ``json.loads`` into dicts,
    and ``gc=False`` rows (only strings inside) are never traversed by the garbage collector:
    a backfill's tens of thousands of logs would otherwise set off full collections."""

    block_number: str
    block_hash: str
    transaction_hash: str
    log_index: str
    topics: tuple[str, ...]
    data: str


class _LogsAnswer(msgspec.Struct):
    result: list[_RawLog] | None = None
    error: Any = None


_LOGS_ANSWER = msgspec.json.Decoder(_LogsAnswer)


class _ScanAnswer(msgspec.Struct):
    """One answer of the logs-and-header batch: logs (a list) or a block (an object)."""

    id: int | str | None = None
    result: list[_RawLog] | dict[str, Any] | None = None
    error: Any = None


# A whole batch refused at once comes back as one object instead of a list.
_SCAN_ANSWER = msgspec.json.Decoder(list[_ScanAnswer] | _ScanAnswer)
_SCAN_LOGS_ID, _SCAN_HEADER_ID = 1, 2


class _HttpProvider(AsyncJSONBaseProvider):
    """JSON-RPC over HTTP with httpx; see the module docstring for why."""

    def __init__(self, url: str, timeout: float) -> None:
        super().__init__()
        self.endpoint_uri = URI(url)
        self._timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None
        # CCIP-read would let a contract make us fetch arbitrary URLs; we never need it.
        self.global_ccip_read_enabled = False

    def __str__(self) -> str:
        # Never the URL: hosted RPC URLs embed API keys.
        return "passgate HTTP JSON-RPC provider"

    async def _send(self, body: bytes) -> httpx.Response:
        loop = asyncio.get_running_loop()
        if self._client is not None and self._client_loop is not loop:
            # httpx connections belong to the loop that opened them; a client reused from
            # another loop (app startup vs. a worker's loop) gets fresh ones instead.
            self._client = None
        if self._client is None:
            self._client_loop = loop
            self._client = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout),
                headers={"Content-Type": "application/json"},
                follow_redirects=False,
            )
        try:
            response = await self._client.post(self.endpoint_uri, content=body)
        except httpx.TimeoutException as exc:
            raise RpcUnavailable(f"RPC timed out after {self._timeout:g}s") from exc
        except httpx.TransportError as exc:
            raise RpcUnavailable(f"RPC unreachable: {type(exc).__name__}") from exc
        status = response.status_code
        if status in (408, 429, 502, 503, 504):
            raise RpcUnavailable(f"RPC answered HTTP {status}")
        return response

    async def _post(self, body: bytes) -> Any:
        return _json_body(await self._send(body))

    async def request_logs(self, params: Any) -> list[_RawLog]:
        """``eth_getLogs`` decoded straight into typed rows (see ``_RawLog`` for why)."""
        response = await self._send(
            self.encode_rpc_request(RPCEndpoint("eth_getLogs"), params)
        )
        answer = _decode_answer(_LOGS_ANSWER, response)
        if answer.error is not None:
            raise classify_rpc_error("eth_getLogs", answer.error)
        if answer.result is None:
            raise RpcError("eth_getLogs: unexpected response", method="eth_getLogs")
        return answer.result

    async def request_logs_and_header(
        self, params: Any, block: int
    ) -> tuple[list[_RawLog], Any]:
        """``eth_getLogs`` and ``eth_getBlockByNumber(block)`` in one batch: the logs as typed
        rows, the block as its JSON object (None when the node does not have it)."""
        body = msgspec.json.encode([
            {"jsonrpc": "2.0", "id": _SCAN_LOGS_ID, "method": "eth_getLogs", "params": [params]},
            {"jsonrpc": "2.0", "id": _SCAN_HEADER_ID, "method": "eth_getBlockByNumber",
             "params": [hex(block), False]},
        ])
        answers = _decode_answer(_SCAN_ANSWER, await self._send(body))
        if isinstance(answers, _ScanAnswer):
            raise classify_rpc_error("eth_getLogs", answers.error or "unexpected response")
        by_id = {answer.id: answer for answer in answers}
        logs, header = by_id.get(_SCAN_LOGS_ID), by_id.get(_SCAN_HEADER_ID)
        if logs is None or header is None:
            # Some nodes answer a refused batch with one error whose id is null.
            error = next((a.error for a in answers if a.error is not None), None)
            raise classify_rpc_error("eth_getLogs", error or "incomplete batch response")
        if logs.error is not None:
            raise classify_rpc_error("eth_getLogs", logs.error)
        if header.error is not None:
            raise classify_rpc_error("eth_getBlockByNumber", header.error)
        if not isinstance(logs.result, list) or isinstance(header.result, list):
            raise RpcError("eth_getLogs: unexpected response", method="eth_getLogs")
        return logs.result, header.result

    async def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        return cast(RPCResponse, await self._post(self.encode_rpc_request(method, params)))

    async def make_batch_request(
        self, batch_requests: list[tuple[RPCEndpoint, Any]]
    ) -> list[RPCResponse] | RPCResponse:
        body = self.encode_batch_rpc_request(batch_requests)
        return cast(list[RPCResponse] | RPCResponse, await self._post(body))

    async def disconnect(self) -> None:
        client, loop = self._client, self._client_loop
        self._client = self._client_loop = None
        # Connections can only be closed on their own loop; from any other loop (or once that
        # loop is closed) they are simply dropped and the OS reclaims the sockets.
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()


class _Endpoint:
    def __init__(self, url: str, timeout: float, token_address: ChecksumAddress) -> None:
        self.provider = _HttpProvider(url, timeout)
        # No middleware: results stay plain dicts and nothing issues extra requests behind
        # our back (the validation middleware would call eth_chainId, ENS would resolve names).
        self.w3 = AsyncWeb3(self.provider, middleware=[])
        self.token: AsyncContract = self.w3.eth.contract(address=token_address, abi=token_abi())


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
        self._endpoints = [_Endpoint(url, timeout, self.token_address) for url in urls]
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
    async def _guard(self, method: str) -> AsyncIterator[_Endpoint]:
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
        return _decode_header(await self.rpc("eth_getBlockByNumber", [identifier, False]))

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
                headers.append(_decode_header(response.get("result")))
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
        return _transfers(logs)

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
        return _transfers(logs), _decode_header(block)

    def _transfer_filter(
        self, from_block: int, to_block: int, to_addresses: Sequence[str] | None
    ) -> dict[str, Any]:
        to_topics = None if to_addresses is None else [_address_topic(a) for a in to_addresses]
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
            "topics": [AUTHORIZATION_USED_TOPIC, _address_topic(authorizer), nonce.lower()],
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
            transfers = tuple(_decode_transfer(log) for log in mine if _is_transfer(log))
            authorizations = tuple(
                _decode_authorization_use(log) for log in mine if _is_authorization_use(log)
            )
            to_address = data.get("to")
            return Receipt(
                tx_hash=str(data["transactionHash"]).lower(),
                status=int(data["status"], 16),
                block_number=int(data["blockNumber"], 16),
                block_hash=str(data["blockHash"]).lower(),
                from_address=_checksum(data["from"]),
                to_address=_checksum(to_address) if to_address else None,
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


def _address_topic(address: str) -> str:
    return "0x" + "00" * 12 + _checksum(address)[2:].lower()


def _transfers(logs: list[_RawLog]) -> list[TransferLog]:
    transfers = []
    try:
        for log in logs:
            topics = log.topics
            # An ERC-721 Transfer has the same topic0 but four topics; only ERC-20 has three.
            if len(topics) == 3 and topics[0].lower() == TRANSFER_TOPIC:
                transfers.append(TransferLog(
                    block_number=int(log.block_number, 16),
                    block_hash=log.block_hash.lower(),
                    tx_hash=log.transaction_hash.lower(),
                    log_index=int(log.log_index, 16),
                    from_address=_checksum("0x" + topics[1][-40:]),
                    to_address=_checksum("0x" + topics[2][-40:]),
                    value=int(log.data[2:66] or "0", 16),
                ))
    except (ValueError, TypeError, IndexError) as exc:
        raise RpcError("eth_getLogs: malformed log", method="eth_getLogs") from exc
    transfers.sort(key=_log_order)
    return transfers


def _decode_answer(decoder: msgspec.json.Decoder[_T], response: httpx.Response) -> _T:
    try:
        return decoder.decode(response.content)
    except msgspec.ValidationError as exc:
        raise RpcError("eth_getLogs: malformed log", method="eth_getLogs") from exc
    except msgspec.DecodeError:
        _json_body(response)  # not JSON: raises what any other call would
        raise RpcError("eth_getLogs: unexpected response", method="eth_getLogs") from None


def _decode_header(data: Any) -> BlockHeader | None:
    if data is None:
        return None
    try:
        base_fee = data.get("baseFeePerGas")
        return BlockHeader(
            number=int(data["number"], 16),
            hash=str(data["hash"]).lower(),
            parent_hash=str(data["parentHash"]).lower(),
            timestamp=int(data["timestamp"], 16),
            base_fee_per_gas=None if base_fee is None else int(base_fee, 16),
        )
    except (AttributeError, KeyError, ValueError, TypeError) as exc:
        raise RpcError(
            "eth_getBlockByNumber: malformed block", method="eth_getBlockByNumber"
        ) from exc


@functools.lru_cache(maxsize=65_536)
def _checksum(address: str) -> str:
    # Checksumming costs a keccak (~80 us); the same few addresses recur in every batch.
    return str(to_checksum_address(address))


def _log_order(transfer: TransferLog) -> tuple[int, int]:
    return transfer.block_number, transfer.log_index


def _is_transfer(log: dict[str, Any]) -> bool:
    # An ERC-721 Transfer has the same topic0 but four topics; only ERC-20 has three.
    topics = log["topics"]
    return len(topics) == 3 and str(topics[0]).lower() == TRANSFER_TOPIC


def _is_authorization_use(log: dict[str, Any]) -> bool:
    topics = log["topics"]
    return len(topics) == 3 and str(topics[0]).lower() == AUTHORIZATION_USED_TOPIC


def _decode_authorization_use(log: dict[str, Any]) -> AuthorizationUse:
    """``AuthorizationUsed(address indexed authorizer, bytes32 indexed nonce)``."""
    topics = log["topics"]
    nonce = str(topics[2]).lower()
    if len(nonce) != 66:
        raise ValueError("an AuthorizationUsed nonce is 32 bytes")
    return AuthorizationUse(authorizer="0x" + str(topics[1])[-40:].lower(), nonce=nonce)


def _decode_transfer(log: dict[str, Any]) -> TransferLog:
    """Decode a raw JSON-RPC log (hex strings) of an ERC-20 Transfer."""
    topics = log["topics"]
    data = str(log["data"])
    return TransferLog(
        block_number=int(log["blockNumber"], 16),
        block_hash=str(log["blockHash"]).lower(),
        tx_hash=str(log["transactionHash"]).lower(),
        log_index=int(log["logIndex"], 16),
        from_address=_checksum("0x" + str(topics[1])[-40:]),
        to_address=_checksum("0x" + str(topics[2])[-40:]),
        value=int(data[2:66] or "0", 16),
    )
