"""JSON-RPC over HTTP for ``chain.client``: one provider per RPC URL (see the client's
docstring for why passgate uses its own, on httpx)."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import httpx
import msgspec
from eth_typing import URI, ChecksumAddress
from web3 import AsyncWeb3
from web3.contract import AsyncContract
from web3.providers.async_base import AsyncJSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from chain.errors import RpcError, RpcUnavailable, classify_rpc_error
from chain.rpc_decode import (
    LOGS_ANSWER,
    SCAN_ANSWER,
    SCAN_HEADER_ID,
    SCAN_LOGS_ID,
    RawLog,
    ScanAnswer,
    decode_answer,
    json_body,
)
from chain.usdc import token_abi


class HttpProvider(AsyncJSONBaseProvider):
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
        return json_body(await self._send(body))

    async def request_logs(self, params: Any) -> list[RawLog]:
        """``eth_getLogs`` decoded straight into typed rows (see ``RawLog`` for why)."""
        response = await self._send(
            self.encode_rpc_request(RPCEndpoint("eth_getLogs"), params)
        )
        answer = decode_answer(LOGS_ANSWER, response)
        if answer.error is not None:
            raise classify_rpc_error("eth_getLogs", answer.error)
        if answer.result is None:
            raise RpcError("eth_getLogs: unexpected response", method="eth_getLogs")
        return answer.result

    async def request_logs_and_header(
        self, params: Any, block: int
    ) -> tuple[list[RawLog], Any]:
        """``eth_getLogs`` and ``eth_getBlockByNumber(block)`` in one batch: the logs as typed
        rows, the block as its JSON object (None when the node does not have it)."""
        body = msgspec.json.encode([
            {"jsonrpc": "2.0", "id": SCAN_LOGS_ID, "method": "eth_getLogs", "params": [params]},
            {"jsonrpc": "2.0", "id": SCAN_HEADER_ID, "method": "eth_getBlockByNumber",
             "params": [hex(block), False]},
        ])
        answers = decode_answer(SCAN_ANSWER, await self._send(body))
        if isinstance(answers, ScanAnswer):
            raise classify_rpc_error("eth_getLogs", answers.error or "unexpected response")
        by_id = {answer.id: answer for answer in answers}
        logs, header = by_id.get(SCAN_LOGS_ID), by_id.get(SCAN_HEADER_ID)
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


class Endpoint:
    def __init__(self, url: str, timeout: float, token_address: ChecksumAddress) -> None:
        self.provider = HttpProvider(url, timeout)
        # No middleware: results stay plain dicts and nothing issues extra requests behind
        # our back (the validation middleware would call eth_chainId, ENS would resolve names).
        self.w3 = AsyncWeb3(self.provider, middleware=[])
        self.token: AsyncContract = self.w3.eth.contract(address=token_address, abi=token_abi())
