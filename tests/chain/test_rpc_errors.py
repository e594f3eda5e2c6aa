"""RPC failures map onto chain.errors: RangeTooLarge, RpcUnavailable, RpcError."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chain.client import ChainClient
from chain.devchain import DevChain, free_port
from chain.errors import (
    ExecutionReverted,
    RangeTooLarge,
    RpcError,
    RpcUnavailable,
    TransactionRejected,
    classify_rpc_error,
)
from chain.networks import BASE_SEPOLIA_USDC
from tests.fixtures.rpcproxy import JsonRpcServer

# ---------------------------------------------------------------------- classification


@pytest.mark.parametrize(
    "error",
    [
        {"code": -32005, "message": "query returned more than 10000 results"},
        {"code": -32602, "message": "Log response size exceeded. You can make eth_getLogs..."},
        {"code": -32000, "message": "block range too large"},
        {"code": -32600, "message": "eth_getLogs is limited to a 10,000 range"},
        {"code": -32000, "message": "exceed maximum block range: 50000"},
        {"code": -32000, "message": "query timeout exceeded"},
        {"code": -32005, "message": "limit exceeded"},
        {"code": -32000, "message": "too many logs, max is 10000"},
    ],
)
def test_provider_log_limits_are_range_too_large(error: dict[str, object]) -> None:
    assert isinstance(classify_rpc_error("eth_getLogs", error), RangeTooLarge)


def test_same_wording_outside_get_logs_is_a_plain_rpc_error() -> None:
    error = classify_rpc_error("eth_call", {"code": -32005, "message": "limit exceeded"})
    assert type(error) is RpcError
    assert error.code == -32005


def test_revert_data_is_decoded_into_the_reason() -> None:
    data = (
        "0x08c379a0"
        "0000000000000000000000000000000000000000000000000000000000000020"
        "0000000000000000000000000000000000000000000000000000000000000011"
        "696e76616c6964207369676e6174757265000000000000000000000000000000"
    )
    error = classify_rpc_error(
        "eth_call", {"code": 3, "message": "execution reverted", "data": data}
    )
    assert isinstance(error, ExecutionReverted)
    assert error.reason == "invalid signature"


@pytest.mark.parametrize(
    ("message", "kind"),
    [
        ("nonce too low: next nonce 5, tx nonce 4", "nonce_too_low"),
        ("replacement transaction underpriced", "underpriced"),
        ("already known", "already_known"),
        ("insufficient funds for gas * price + value", "insufficient_funds"),
        ("max fee per gas less than block base fee", "fee_too_low"),
        ("intrinsic gas too high -- tx.gas_limit > env.block.gas_limit", "invalid"),
        ("intrinsic gas too low", "invalid"),
        ("max priority fee per gas higher than max fee per gas", "invalid"),
        ("invalid chain id for signer", "invalid"),
        ("tx fee (1.10 ether) exceeds the configured cap (1.00 ether)", "invalid"),
        ("something new", "other"),
    ],
)
def test_raw_transaction_rejections_have_a_kind(message: str, kind: str) -> None:
    error = classify_rpc_error("eth_sendRawTransaction", {"code": -32000, "message": message})
    assert isinstance(error, TransactionRejected)
    assert error.kind == kind


# ---------------------------------------------------------------------- a scripted JSON-RPC node


class ScriptedNode(JsonRpcServer):
    """A local JSON-RPC server answering every request with a fixed status and error."""

    def __init__(self) -> None:
        self.error: dict[str, object] = {"code": -32000, "message": "unset"}
        # How a batch is refused: an error per call, one error object, or a list of one error
        # whose id is null.
        self.batch_answer = "each"
        super().__init__()

    def answer(self, request: Any) -> Any:
        if not isinstance(request, list):
            return {"jsonrpc": "2.0", "id": request["id"], "error": self.error}
        if self.batch_answer == "each":
            return [{"jsonrpc": "2.0", "id": one["id"], "error": self.error} for one in request]
        if self.batch_answer == "whole":
            return {"jsonrpc": "2.0", "id": None, "error": self.error}
        return [{"jsonrpc": "2.0", "id": None, "error": self.error}]


@pytest.fixture
def scripted_node() -> Iterator[ScriptedNode]:
    node = ScriptedNode()
    yield node
    node.close()


@pytest.mark.parametrize("status", [200, 400])
async def test_get_logs_limit_from_the_node_raises_range_too_large(
    scripted_node: ScriptedNode, status: int
) -> None:
    # Some providers send the JSON-RPC error with HTTP 200, others with HTTP 400.
    scripted_node.status = status
    scripted_node.error = {"code": -32005, "message": "query returned more than 10000 results"}
    async with ChainClient(scripted_node.url, token_address=BASE_SEPOLIA_USDC, timeout=3) as client:
        with pytest.raises(RangeTooLarge):
            await client.get_transfer_logs(0, 1_000_000, to_addresses=[BASE_SEPOLIA_USDC])


@pytest.mark.parametrize("batch_answer", ["each", "whole", "one-null-id"])
@pytest.mark.parametrize("status", [200, 400])
async def test_a_scan_refused_by_a_log_limit_raises_range_too_large(
    scripted_node: ScriptedNode, status: int, batch_answer: str
) -> None:
    # The logs-and-header batch, refused in each of the shapes nodes use.
    scripted_node.status = status
    scripted_node.batch_answer = batch_answer
    scripted_node.error = {"code": -32005, "message": "query returned more than 10000 results"}
    async with ChainClient(scripted_node.url, token_address=BASE_SEPOLIA_USDC, timeout=3) as client:
        with pytest.raises(RangeTooLarge):
            await client.scan_transfer_logs(0, 1_000_000, to_addresses=[BASE_SEPOLIA_USDC])


async def test_overloaded_node_is_unavailable(scripted_node: ScriptedNode) -> None:
    scripted_node.status = 503
    async with ChainClient(scripted_node.url, token_address=BASE_SEPOLIA_USDC, timeout=3) as client:
        with pytest.raises(RpcUnavailable):
            await client.block_number()


async def test_other_node_errors_are_rpc_errors(scripted_node: ScriptedNode) -> None:
    scripted_node.error = {"code": -32601, "message": "the method does not exist"}
    async with ChainClient(scripted_node.url, token_address=BASE_SEPOLIA_USDC, timeout=3) as client:
        with pytest.raises(RpcError) as caught:
            await client.block_number()
    assert type(caught.value) is RpcError
    assert caught.value.code == -32601


# ---------------------------------------------------------------------- a real anvil going away


@pytest.mark.chain
async def test_killed_node_is_unavailable_within_the_timeout(
    devchain_factory: Callable[..., DevChain],
) -> None:
    # Given a working client on its own chain
    chain = devchain_factory(usdc_per_account=0)
    async with chain.client(timeout=2) as client:
        assert await client.chain_id() == 84532
        # When anvil is killed
        chain.stop()
        started = time.monotonic()
        # Then the next call fails fast as RpcUnavailable
        with pytest.raises(RpcUnavailable):
            await client.block_number()
        assert time.monotonic() - started < 2.5


@pytest.mark.chain
async def test_the_first_call_after_a_node_restart_on_the_same_port_succeeds(
    devchain_factory: Callable[..., DevChain],
) -> None:
    # Given a client holding a kept-alive connection to a node
    chain = devchain_factory(usdc_per_account=0)
    async with chain.client(timeout=5) as client:
        assert await client.chain_id() == 84532
        # When the node restarts on the same address (an upgrade, a crash and restart)
        port = chain.port
        chain.stop()
        restarted = devchain_factory(usdc_per_account=0, port=port)
        # Then the next call reaches the new node instead of failing on the dead connection
        assert await client.block_number() == await _head(restarted)


async def _head(chain: DevChain) -> int:
    async with chain.client(timeout=5) as fresh:
        return await fresh.block_number()


def wait_until_stopped(pid: int, within: float = 5.0) -> None:
    # SIGSTOP is delivered asynchronously; a request sent too early could still be answered.
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state in ("T", "t"):
            return
        time.sleep(0.01)
    raise AssertionError(f"process {pid} did not stop within {within:g}s")


@pytest.mark.chain
async def test_hung_node_times_out_as_unavailable_then_recovers(
    devchain_factory: Callable[..., DevChain],
) -> None:
    chain = devchain_factory(usdc_per_account=0)
    async with chain.client(timeout=1) as client:
        head = await client.block_number()
        # When anvil is frozen (accepts connections, never answers)
        os.kill(chain.pid, signal.SIGSTOP)
        try:
            wait_until_stopped(chain.pid)
            started = time.monotonic()
            with pytest.raises(RpcUnavailable):
                await client.block_number()
            elapsed = time.monotonic() - started
        finally:
            os.kill(chain.pid, signal.SIGCONT)
        # Then the call gave up after about the timeout, and the client works again afterwards
        assert 0.9 < elapsed < 3.0
        assert await client.block_number() >= head


@pytest.mark.chain
async def test_client_moves_to_the_next_rpc_url_after_an_unavailable_one(
    devchain: DevChain,
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    client = ChainClient([dead, devchain.rpc_url], token_address=devchain.token_address, timeout=2)
    async with client:
        with pytest.raises(RpcUnavailable):
            await client.chain_id()
        assert await client.chain_id() == 84532
